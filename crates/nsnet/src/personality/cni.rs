//! The CNI plugin personality (`nsnet-bridge`): CNI 1.1's environment and the network config
//! on stdin in, the result or error JSON out; nsnet-bridge's `cni` module does the work in the
//! current network namespace.

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
    let out = nsnet_bridge::cni::run(&vars, &conf);
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.stdout.as_bytes());
    let _ = stdout.flush();
    out.status
}
