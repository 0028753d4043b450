//! The monitor: the process that runs `runc run` for a container and waits for it, recording
//! in `state.json` first that it runs (with the PID runc reports) and then how it exited.
//! Detached (`-d`), it is `nsnet internal container-monitor` in its own session, its stdout and
//! stderr the container's log, and it tells the front end over a pipe that the container runs
//! (one byte; EOF if it never did). In the foreground the front end is the monitor.
//!
//! Nothing here sleeps to find out: runc's PID file appearing is an inotify event on the
//! container's directory, and runc's exit is its pidfd becoming readable.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Stdio;

use crate::store::{self, Container, Status, Store};
use crate::{Error, lifecycle, runtime, time, wait};

/// The byte a detached monitor writes on its ready pipe once the container runs.
pub const READY: u8 = b'R';

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
}

/// Runs `runc run` for `c` and waits: records running (with the PID runc reports) and the
/// exit, and writes [`READY`] to `ready` in between. Returns the container's exit code (128+N
/// for a signal).
pub fn supervise(
    c: &mut Container,
    (i, o, e): (Stdio, Stdio, Stdio),
    ctty: bool,
    mut ready: Option<std::fs::File>,
) -> Result<i32, Error> {
    let pid_file = c.dir.join("runc.pid");
    let _ = std::fs::remove_file(&pid_file);
    let watch = wait::Watch::new().map_err(Error::io("create an inotify instance"))?;
    watch
        .dir_entries(&c.dir)
        .map_err(Error::io(format!("watch {}", c.dir.display())))?;
    // Listening before runc starts: runc connects while it creates the container.
    let _bypass = if c.config.bypass {
        Some(crate::bypass::start(c)?)
    } else {
        None
    };
    let mut cmd = runtime::run(c, &pid_file);
    if ctty {
        // runc's foreground terminal mode opens /dev/tty: give it a session whose controlling
        // terminal is the pty on its stdin.
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .stdin(i)
        .stdout(o)
        .stderr(e)
        .spawn()
        .map_err(Error::io(format!("run {}", c.config.runtime.display())))?;
    c.state.monitor_pid = std::process::id() as i32;
    c.save_state()?;
    let exit = wait::pidfd(child.id() as i32);
    let wait_err = Error::io(format!("wait for {}", c.config.runtime.display()));
    loop {
        if let Some(pid) = read_pid(&pid_file) {
            c.state.status = Status::Running;
            c.state.pid = pid;
            c.state.pid_start = store::start_time(pid).unwrap_or(0);
            c.state.started = time::now();
            c.save_state()?;
            if let Some(mut r) = ready.take() {
                // The front end may be gone (killed): the container runs regardless.
                let _ = r.write_all(&[READY]);
            }
            break;
        }
        let Some(exit) = &exit else { break };
        match wait::poll(&[watch.fd(), exit.as_fd()], None) {
            Ok(Some(0)) => watch.drain(),
            Ok(_) => break,
            Err(e) => return Err(Error::io(format!("wait for {}", pid_file.display()))(e)),
        }
    }
    let status = child.wait().map_err(wait_err)?;
    let code = status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    c.reload()?;
    // runc writes the PID file once the container started (hooks included): a command that
    // was over before the wait above saw it still ran.
    if c.state.started == 0.0
        && let Some(pid) = read_pid(&pid_file)
    {
        c.state.pid = pid;
        c.state.started = time::now();
    }
    c.state.status = Status::Exited;
    c.state.exit_code = Some(code);
    c.state.finished = time::now();
    c.save_state()?;
    Ok(code)
}

/// A detached container with `-t`: runc gets a pty of the monitor's as its controlling
/// terminal (its foreground terminal mode needs one), and what the container writes to its
/// terminal is copied from the pty's master to the log (the monitor's stdout).
pub fn supervise_with_pty(c: &mut Container, ready: Option<std::fs::File>) -> Result<i32, Error> {
    let pty = nix::pty::openpty(None, None).map_err(|e| {
        Error::io("open a pty for the container's terminal")(std::io::Error::from(e))
    })?;
    let slave = std::fs::File::from(pty.slave);
    let dup = |f: &std::fs::File| f.try_clone().map_err(Error::io("duplicate the pty"));
    let (i, o, e) = (dup(&slave)?, dup(&slave)?, slave);
    let mut master = std::fs::File::from(pty.master);
    let copier = std::thread::spawn(move || {
        // Ends with EIO once the last slave descriptor (runc's, the container's) is closed.
        let mut out = std::io::stdout();
        let mut buf = [0u8; 8192];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = out.flush();
        }
    });
    let code = supervise(c, (i.into(), o.into(), e.into()), true, ready)?;
    let _ = copier.join();
    Ok(code)
}

/// `nsnet internal container-monitor DIR`: the detached container's monitor. `ready` is the
/// pipe to the front end that started it. Runs inside the instance's namespaces (inherited).
pub fn monitor(
    ctx: &lifecycle::Ctx,
    dir: &Path,
    ready: Option<std::fs::File>,
) -> Result<i32, Error> {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let store = Store {
        root: dir.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    let mut c = store.load(&id)?;
    let code = if c.config.tty {
        supervise_with_pty(&mut c, ready)?
    } else {
        supervise(
            &mut c,
            (Stdio::null(), Stdio::inherit(), Stdio::inherit()),
            false,
            ready,
        )?
    };
    if c.config.auto_remove {
        let inst = lifecycle::instance_at(&c.config.instance).ok_or_else(|| {
            Error::Instance(format!(
                "the nsnet instance at {} is gone",
                c.config.instance.display()
            ))
        })?;
        lifecycle::remove(ctx, &store, c, &inst)?;
    }
    Ok(code)
}
