//! The two personalities' conventions: which `--net` a launch without one gets, and how an
//! error, a warning and a signal exit read (RootlessKit's scripts match its lines).

use serde::{Deserialize, Serialize};

/// Which program's conventions the launcher follows for defaults and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Personality {
    /// `nsnet run`: `nsnet: error: …` lines, 128+N for a command killed by signal N.
    Nsnet,
    /// Installed as `rootlesskit`: `[rootlesskit:parent] error: …`, exit 255 on a signal,
    /// Go's signal descriptions.
    Rootlesskit,
}

/// Which side of the instance a message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Parent,
    Child,
}

impl Personality {
    /// The network driver for a launch without `--net`: RootlessKit's is the caller's own
    /// network; nsnet's is its in-process user-mode one. The only default that differs
    /// between the two front ends, so it is decided here and not in either CLI.
    pub fn default_net(self) -> &'static str {
        match self {
            Personality::Nsnet => "builtin",
            Personality::Rootlesskit => "host",
        }
    }

    /// One error line in this personality's format.
    pub fn error_line(self, role: Role, msg: &str) -> String {
        match (self, role) {
            (Personality::Rootlesskit, Role::Parent) => {
                format!("[rootlesskit:parent] error: {msg}")
            }
            // RootlessKit pads "child" to the width of "parent".
            (Personality::Rootlesskit, Role::Child) => format!("[rootlesskit:child ] error: {msg}"),
            (Personality::Nsnet, _) => format!("nsnet: error: {msg}"),
        }
    }

    /// One warning line in this personality's format (logrus's for RootlessKit).
    pub fn warning_line(self, msg: &str) -> String {
        match self {
            Personality::Rootlesskit => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                format!(
                    "time=\"{}\" level=warning msg=\"{}\"",
                    rfc3339_utc(now),
                    msg.replace('"', "\\\"")
                )
            }
            Personality::Nsnet => format!("nsnet: warning: {msg}"),
        }
    }

    /// The exit status for a process killed by `sig`.
    pub fn signal_exit_code(self, sig: i32) -> i32 {
        match self {
            // Go's WaitStatus.ExitStatus() is -1 for a signal, and os.Exit(-1) is 255.
            Personality::Rootlesskit => 255,
            Personality::Nsnet => 128 + sig,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (logrus's text format, seconds, UTC).
fn rfc3339_utc(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_909_076), "2026-11-28T23:37:56Z");
    }

    #[test]
    fn personalities_format_lines() {
        assert_eq!(
            Personality::Rootlesskit.error_line(Role::Child, "x"),
            "[rootlesskit:child ] error: x"
        );
        assert_eq!(
            Personality::Nsnet.error_line(Role::Parent, "x"),
            "nsnet: error: x"
        );
        assert_eq!(Personality::Rootlesskit.signal_exit_code(10), 255);
        assert_eq!(Personality::Nsnet.signal_exit_code(10), 138);
        assert!(
            Personality::Rootlesskit
                .warning_line("a \"b\"")
                .ends_with("msg=\"a \\\"b\\\"\"")
        );
        assert_eq!(Personality::Nsnet.default_net(), "builtin");
        assert_eq!(Personality::Rootlesskit.default_net(), "host");
    }
}
