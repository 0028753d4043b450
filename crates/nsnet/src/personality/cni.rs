//! The CNI plugin personality (`nsnet-bridge`): CNI 1.1's environment and the network config
//! on stdin in, the result or error JSON out; nsnet-bridge's `cni` module does the work in the
//! current network namespace.
//!
//! One thing only the front end can judge: whether the nsnet instance the plugin runs under
//! is up. A runtime inside an instance (containerd in Usernetes' node, started as `nsnet run`'s
//! command or beneath it) inherits `$NSNET_STATE_DIR` (or, under RootlessKit's
//! name, `$ROOTLESSKIT_STATE_DIR`) and passes its environment to plugins, as libcni does.
//! When that instance has exited or crashed, its child netns has lost tap0 with the stack
//! behind it: pods attached now could reach nothing beyond the bridge, so STATUS answers 50
//! (not available) and CNI 1.1 runtimes hold pod creation until it passes. Without either
//! variable the plugin is not under an instance and STATUS judges only the store and `nft`.

/// The CNI plugin personality: the environment and the config on stdin in, the result or
/// error JSON out (nsnet-bridge's `cni` module does the work in the current netns).
pub fn main() -> i32 {
    use std::io::{Read, Write};
    let mut conf = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut conf) {
        println!(
            r#"{{"cniVersion":"1.1.0","code":5,"msg":"cannot read the config on stdin: {e}"}}"#
        );
        return 1;
    }
    let vars = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let out = match instance_down(&vars) {
        Some(why) if vars.get("CNI_COMMAND").map(String::as_str) == Some("STATUS") => {
            nsnet_bridge::cni::not_available(&conf, &why)
        }
        _ => nsnet_bridge::cni::run(&vars, &conf),
    };
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.stdout.as_bytes());
    let _ = stdout.flush();
    out.status
}

/// Why the instance named by the environment is not running, if one is named and it is not.
fn instance_down(vars: &std::collections::HashMap<String, String>) -> Option<String> {
    use nsnet_ns::instance::{Instance, Source};
    let (dir, source) = [
        ("NSNET_STATE_DIR", Source::NsnetEnv),
        ("ROOTLESSKIT_STATE_DIR", Source::RootlesskitEnv),
    ]
    .into_iter()
    .find_map(|(k, s)| vars.get(k).filter(|v| !v.is_empty()).map(|v| (v, s)))?;
    Instance::at(std::path::Path::new(dir), source)
        .err()
        .map(|e| e.to_string())
}
