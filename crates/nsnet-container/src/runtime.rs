//! The OCI runtime (runc): finding it, and the invocations nsnet makes of it — `run` (by the
//! monitor), `delete`, `exec`. Every invocation names runc's state directory (`--root`), which
//! lives beside the default instance so that it is the user's alone.
//!
//! runc runs inside the instance's user and mount namespaces, where it is root; joining them
//! is the caller's business ([`crate::lifecycle`]). Only what runc is told is here.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;
use crate::store::{Config, Container};

/// The runtime to use: `given`, else `runc` from PATH (then /usr/sbin and /sbin, where some
/// distributions put it).
pub fn find(given: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = given {
        if p.is_file() {
            return Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
        }
        return Err(Error::Invalid(format!(
            "the runtime {} does not exist",
            p.display()
        )));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for d in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let c = d.join("runc");
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(Error::Invalid(
        "runc not found in PATH; install it (Debian: apt-get install runc) or pass --runtime PATH"
            .into(),
    ))
}

/// `RUNTIME --root ROOT`, the start of every invocation for the container of `c`.
pub fn command(c: &Config) -> Command {
    let mut cmd = Command::new(&c.runtime);
    cmd.arg("--root").arg(&c.runtime_root);
    cmd
}

/// `runc run --bundle B --pid-file F ID`: what the monitor waits for. runc writes the PID file
/// once the container's process runs (its createRuntime hooks done).
pub fn run(c: &Container, pid_file: &Path) -> Command {
    let mut cmd = command(&c.config);
    cmd.arg("run")
        .arg("--bundle")
        .arg(c.bundle())
        .arg("--pid-file")
        .arg(pid_file)
        .arg(c.id());
    cmd
}

/// `runc delete --force`: runc's own state of the container. One that runc never knew (it
/// failed before creating it) or already forgot is not an error.
pub fn delete(c: &Container) -> Result<(), Error> {
    let out = command(&c.config)
        .args(["delete", "--force", c.id()])
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("run {}", c.config.runtime.display())))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("does not exist") && !err.contains("not exist") {
        return Err(Error::Runtime {
            op: format!("runc delete {}", &c.id()[..12.min(c.id().len())]),
            msg: err.lines().last().unwrap_or("failed").to_string(),
        });
    }
    Ok(())
}

/// What `runc exec` is asked to run.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions<'a> {
    pub tty: bool,
    pub env: &'a [String],
    pub workdir: Option<&'a str>,
    pub command: &'a [String],
}

/// Replaces this process with `runc exec` in the container: returns only on failure.
pub fn exec(c: &Container, o: &ExecOptions) -> Error {
    let mut cmd = command(&c.config);
    cmd.arg("exec");
    if o.tty {
        cmd.arg("--tty");
    }
    if let Some(w) = o.workdir {
        cmd.arg("--cwd").arg(w);
    }
    for e in o.env {
        cmd.arg("--env").arg(e);
    }
    let err = cmd.arg(c.id()).args(o.command).exec();
    Error::Io {
        what: format!("run {}", c.config.runtime.display()),
        source: err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_runtime_that_does_not_exist_is_named() {
        let e = find(Some(Path::new("/nonexistent/runc"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the runtime /nonexistent/runc does not exist"
        );
    }

    #[test]
    fn a_given_runtime_is_canonical() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("rt"), "").unwrap();
        std::os::unix::fs::symlink("rt", d.path().join("link")).unwrap();
        let got = find(Some(&d.path().join("link"))).unwrap();
        assert_eq!(got, std::fs::canonicalize(d.path().join("rt")).unwrap());
    }
}
