//! The lifecycle's error paths against a fake OCI runtime: a shell script standing in for runc
//! whose `run` and `delete` do what `mode` (a file beside it) says, and which logs its argv.
//! The instance is this process itself (nothing to join), the image a docker-archive
//! directory with no layers, the network `none` (no hooks). The real runc is in the
//! integration tests (crates/nsnet/tests/container.rs).

use super::*;

const FAKE: &str = r#"#!/bin/sh
# A stand-in for runc: --root R CMD ARGS…; what CMD does is in $(dirname $0)/mode.
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
mode=$(cat "$dir/mode")
shift 2
cmd=$1
case "$cmd:$mode" in
run:fail-create)
	echo 'level=error msg="runc run failed: unable to create: no such device"' >&2
	exit 1 ;;
run:exit-early)
	exit 0 ;;
run:ran-exit3)
	while [ "$1" != --pid-file ]; do shift; done
	echo $$ > "$2"
	exit 3 ;;
delete:fail-delete)
	echo 'level=error msg="delete: permission denied"' >&2
	exit 1 ;;
delete:gone)
	echo 'level=error msg="container does not exist"' >&2
	exit 1 ;;
delete:*)
	exit 0 ;;
esac
echo "fake runtime: unexpected $cmd in mode $mode" >&2
exit 99
"#;

/// A fake monitor (the nsnet binary's stand-in for `internal container-monitor`): writes
/// `ready` on fd 3 if asked, and `log` to its stdout (the container's log).
const FAKE_MONITOR: &str = r#"#!/bin/sh
dir=$(dirname "$0")
cat "$dir/monitor-log"
if [ -s "$dir/monitor-ready" ]; then cat "$dir/monitor-ready" >&3; fi
exit 0
"#;

struct World {
    lock: std::sync::OnceLock<nix::fcntl::Flock<std::fs::File>>,
    tmp: tempfile::TempDir,
    store: Store,
    ctx: Ctx,
}

fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl World {
    fn new(mode: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        script(&d.join("runc"), FAKE);
        script(&d.join("monitor"), FAKE_MONITOR);
        std::fs::write(d.join("mode"), mode).unwrap();
        std::fs::write(d.join("monitor-log"), "").unwrap();
        std::fs::write(d.join("monitor-ready"), "").unwrap();
        let image = d.join("image");
        std::fs::create_dir_all(&image).unwrap();
        std::fs::write(
            image.join("manifest.json"),
            r#"[{"Config":"config.json","Layers":[]}]"#,
        )
        .unwrap();
        std::fs::write(image.join("config.json"), r#"{"config":{}}"#).unwrap();
        std::fs::create_dir_all(d.join("state")).unwrap();
        World {
            lock: std::sync::OnceLock::new(),
            store: Store {
                root: d.join("containers"),
            },
            ctx: Ctx {
                exe: d.join("monitor"),
            },
            tmp,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn options(&self, command: &[&str]) -> RunOptions {
        let mut rest = vec![self.path("image").display().to_string()];
        rest.extend(command.iter().map(|s| s.to_string()));
        RunOptions {
            network: "none".into(),
            rest,
            runtime: Some(self.path("runc")),
            ..RunOptions::default()
        }
    }

    /// This process, as an instance: its state directory has a child_pid (ours, so there is
    /// nothing to join) and a lock this process holds (so it reads as alive).
    fn instance(&self) -> Instance {
        let dir = self.path("state");
        std::fs::write(dir.join("child_pid"), std::process::id().to_string()).unwrap();
        if self.lock.get().is_none() {
            let f = std::fs::File::create(dir.join("lock")).unwrap();
            let held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).unwrap();
            let _ = self.lock.set(held);
        }
        let found =
            nsnet_ns::instance::Instance::at(&dir, nsnet_ns::instance::Source::Given).unwrap();
        Instance {
            state_dir: dir,
            found,
            dns: None,
            ipv6: false,
        }
    }

    fn prepare(&self, o: &RunOptions) -> Result<Prepared, Error> {
        prepare_with(&self.ctx, &self.store, o, || Ok(self.instance()))
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.store
            .list()
            .unwrap()
            .iter()
            .map(|c| c.id().to_string())
            .collect()
    }
}

#[test]
fn a_run_that_fails_to_create_returns_runcs_status_and_leaves_nothing() {
    let w = World::new("fail-create");
    let p = w.prepare(&w.options(&["true"])).unwrap();
    assert_eq!(w.ids().len(), 1);
    assert_eq!(run_foreground(&w.ctx, &w.store, p).unwrap(), 1);
    assert_eq!(w.calls(), ["run", "delete"]);
    assert!(w.ids().is_empty());
}

#[test]
fn a_run_that_exits_before_the_container_started_is_removed_too() {
    let w = World::new("exit-early");
    let p = w.prepare(&w.options(&["true"])).unwrap();
    assert_eq!(run_foreground(&w.ctx, &w.store, p).unwrap(), 0);
    assert!(w.ids().is_empty());
}

#[test]
fn a_container_that_ran_and_exited_is_kept_with_its_code_unless_rm() {
    let w = World::new("ran-exit3");
    let p = w.prepare(&w.options(&["sh"])).unwrap();
    let id = p.container.id().to_string();
    assert_eq!(run_foreground(&w.ctx, &w.store, p).unwrap(), 3);
    let c = w.store.load(&id).unwrap();
    assert_eq!(c.status(), Status::Exited);
    assert_eq!(c.state.exit_code, Some(3));
    assert!(c.state.started > 0.0 && c.state.pid > 0, "{:?}", c.state);
    let mut o = w.options(&["sh"]);
    o.auto_remove = true;
    let p = w.prepare(&o).unwrap();
    assert_eq!(run_foreground(&w.ctx, &w.store, p).unwrap(), 3);
    assert_eq!(w.ids(), [id]);
}

#[test]
fn a_failed_delete_keeps_the_record_and_names_runcs_reason() {
    let w = World::new("ran-exit3");
    let p = w.prepare(&w.options(&["sh"])).unwrap();
    let id = p.container.id().to_string();
    run_foreground(&w.ctx, &w.store, p).unwrap();
    std::fs::write(w.path("mode"), "fail-delete").unwrap();
    let c = w.store.load(&id).unwrap();
    let e = remove(&w.ctx, &w.store, c, &w.instance()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "runc delete {}: level=error msg=\"delete: permission denied\"",
            &id[..12]
        )
    );
    assert_eq!(w.ids(), std::slice::from_ref(&id));
    // One runc has already forgotten is removed.
    std::fs::write(w.path("mode"), "gone").unwrap();
    remove(&w.ctx, &w.store, w.store.load(&id).unwrap(), &w.instance()).unwrap();
    assert!(w.ids().is_empty());
}

#[test]
fn preparation_failures_leave_no_record() {
    let w = World::new("exit-early");
    let e = w.prepare(&w.options(&[])).err().unwrap();
    assert!(e.to_string().starts_with("no command"), "{e}");
    let mut o = w.options(&["true"]);
    o.runtime = Some(w.path("nosuch"));
    let e = w.prepare(&o).err().unwrap();
    assert!(e.to_string().contains("nosuch does not exist"), "{e}");
    let mut o = w.options(&["true"]);
    o.publish = vec!["8080:80".into()];
    let e = w.prepare(&o).err().unwrap();
    assert!(e.to_string().contains("bridge network"), "{e}");
    let e = w
        .prepare(&RunOptions {
            rest: vec![],
            ..w.options(&[])
        })
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("give an IMAGE"), "{e}");
    let e = w
        .prepare(&RunOptions {
            bypass: true,
            ..w.options(&["true"])
        })
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("--bypass needs a container network"),
        "{e}"
    );
    assert!(w.ids().is_empty());
    assert!(w.calls().is_empty(), "runc ran: {:?}", w.calls());
}

#[test]
fn a_detached_start_whose_monitor_never_reports_running_fails_with_the_logs_reason() {
    let w = World::new("exit-early");
    std::fs::write(
        w.path("monitor-log"),
        "runc: some noise\nlevel=error msg=\"runc run failed: no such device\"\n",
    )
    .unwrap();
    let mut o = w.options(&["true"]);
    o.detach = true;
    let p = w.prepare(&o).unwrap();
    let id = p.container.id().to_string();
    let e = start_detached(&w.ctx, &w.store, p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "container {} failed to start: level=error msg=\"runc run failed: no such device\"",
            &id[..12]
        )
    );
    assert!(w.ids().is_empty());
}

#[test]
fn a_detached_start_returns_once_the_monitor_reports_running() {
    let w = World::new("exit-early");
    std::fs::write(w.path("monitor-ready"), "R").unwrap();
    let mut o = w.options(&["true"]);
    o.detach = true;
    let p = w.prepare(&o).unwrap();
    let id = p.container.id().to_string();
    assert_eq!(start_detached(&w.ctx, &w.store, p).unwrap(), id);
    assert_eq!(w.ids(), [id]);
}

#[test]
fn stop_terminates_the_init_and_returns_without_waiting_out_the_grace() {
    let w = World::new("exit-early");
    let p = w.prepare(&w.options(&["true"])).unwrap();
    let mut c = p.container;
    let mut init = Command::new("sleep").arg("30").spawn().unwrap();
    c.state.status = Status::Running;
    c.state.pid = init.id() as i32;
    c.state.pid_start = store::start_time(c.state.pid).unwrap();
    c.save_state().unwrap();
    let t0 = Instant::now();
    stop(&mut c, Duration::from_secs(20)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(init.wait().unwrap().signal(), Some(libc::SIGTERM));
}

#[test]
fn failure_line_prefers_the_hooks_own_message() {
    let log = "x\nerror running hook #0: exit status 1, stderr: nsnet: oci-hook createRuntime: network nosuch not found\\n\"\n";
    assert_eq!(
        failure_line(log),
        "nsnet: oci-hook createRuntime: network nosuch not found"
    );
    assert_eq!(failure_line("a\nlast\n\n"), "last");
}

#[test]
fn env_merges_image_then_given_by_name() {
    let got = merge_env(
        &["A=1".into(), "PATH=/img".into()],
        &["A=2".into()],
        &["HOSTNAME=h".into()],
    );
    assert_eq!(got, ["PATH=/img", "HOSTNAME=h", "A=2"]);
    assert!(merge_env(&[], &[], &[])[0].starts_with("PATH="));
}
