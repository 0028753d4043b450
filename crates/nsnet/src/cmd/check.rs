//! `nsnet check`: the front end of the host doctor.
//!
//! The findings come from `nsnet_ns::check` (namespaces, id maps, tun, sysctls, cgroups) and
//! from `setup_cmd` (which clients are installed and whether they use nsnet); this file only
//! gathers the probe for the running user and prints. Exit status 0 only when nothing needed
//! is missing (notes do not count).

use nsnet_ns::check::{self, Finding, Host, Probe, Status, User};

fn label(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Note => "note",
        Status::Problem => "PROBLEM",
    }
}

/// The report, one finding per line and each fix indented below it.
pub fn render(user: &User, findings: &[Finding]) -> String {
    let mut out = format!(
        "nsnet check for {} (uid {}){}\n",
        user.name,
        user.uid,
        if user.is_root() { ", as root" } else { "" }
    );
    for f in findings {
        out.push_str(&format!(
            "{:<8}{}: {}\n",
            label(f.status),
            f.topic,
            f.summary
        ));
        if let Some(fix) = &f.fix {
            let mut lines = fix.lines();
            out.push_str(&format!(
                "        fix: {}\n",
                lines.next().unwrap_or_default()
            ));
            for l in lines {
                out.push_str(&format!("             {l}\n"));
            }
        }
    }
    let problems = findings
        .iter()
        .filter(|f| f.status == Status::Problem)
        .count();
    out.push_str(&match problems {
        0 => "ready: nothing needed is missing\n".to_string(),
        1 => "not ready: 1 problem\n".to_string(),
        n => format!("not ready: {n} problems\n"),
    });
    out
}

pub fn main() -> i32 {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let user = User {
        name,
        uid: uid.as_raw(),
        gid: gid.as_raw(),
    };
    let exe = std::env::current_exe()
        .map(|e| std::fs::canonicalize(&e).unwrap_or(e))
        .unwrap_or_else(|_| "nsnet".into());
    let path = std::env::var("PATH").unwrap_or_else(|_| check::DEFAULT_PATH.into());
    let host = Host::new("/");
    let probe = Probe::gather(&host, user.clone(), exe, &path);
    let mut findings = check::run(&host, &probe);
    match crate::cmd::setup::Env::from_process() {
        Ok(env) => findings.extend(crate::cmd::setup::client_findings(&env)),
        Err(e) => findings.push(Finding {
            status: Status::Note,
            topic: "clients".into(),
            summary: format!("not checked: {e}"),
            fix: None,
        }),
    }
    print!("{}", render(&user, &findings));
    if findings.iter().any(|f| f.status == Status::Problem) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_indents_multi_line_fixes_and_counts_problems() {
        let user = User {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
        };
        let f = vec![
            Finding {
                status: Status::Ok,
                topic: "a".into(),
                summary: "fine".into(),
                fix: None,
            },
            Finding {
                status: Status::Problem,
                topic: "b".into(),
                summary: "broken".into(),
                fix: Some("one\ntwo".into()),
            },
        ];
        assert_eq!(
            render(&user, &f),
            "nsnet check for alice (uid 1000)\nok      a: fine\nPROBLEM b: broken\n        fix: one\n             two\nnot ready: 1 problem\n"
        );
        assert!(render(&user, &f[..1]).ends_with("ready: nothing needed is missing\n"));
    }
}
