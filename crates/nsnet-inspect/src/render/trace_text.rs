//! The `nsnet ns trace` report: where it starts and goes, each hop in the namespace it is
//! in, then the verdict on one line (`reachable: …`, `blocked: …`, `no listener: …`).

use std::fmt::Write;

use crate::trace::{Outcome, Trace};

pub fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Reachable => "reachable",
        Outcome::Blocked => "blocked",
        Outcome::NoListener => "no listener",
        Outcome::NoRoute => "no route",
        Outcome::Leaves => "leaves",
        Outcome::Unknown => "unknown",
    }
}

pub fn trace_text(t: &Trace) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {} → {}:{}/{}{}",
        t.from.name,
        t.to.addr,
        t.to.port,
        t.to.proto,
        if t.to.given != format!("{}:{}", t.to.addr, t.to.port) {
            format!(" ({})", t.to.given)
        } else {
            String::new()
        }
    );
    let mut last = None;
    for (k, h) in t.hops.iter().enumerate() {
        if last != Some(h.netns) {
            let _ = writeln!(out, "  in {}", h.name);
            last = Some(h.netns);
        }
        let _ = writeln!(out, "    {}. {}", k + 1, h.step);
    }
    let _ = writeln!(
        out,
        "{}: {}",
        outcome_word(t.verdict.outcome),
        t.verdict.reason
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{From, Hop, To, Verdict};

    #[test]
    fn hops_are_grouped_by_namespace_and_the_verdict_closes() {
        let t = Trace {
            from: From {
                netns: 3,
                name: "container docker/web (de45fb625f78) net:[3]".into(),
            },
            to: To {
                given: "host:8080".into(),
                addr: "10.0.2.2".parse().unwrap(),
                port: 8080,
                proto: "tcp",
            },
            hops: vec![
                Hop {
                    netns: 3,
                    name: "container docker/web (de45fb625f78) net:[3]".into(),
                    step: "route to 10.0.2.2 by eth0 via 172.17.0.1 ⇄ veth1 into rootless-child net:[2]".into(),
                },
                Hop {
                    netns: 2,
                    name: "rootless-child net:[2]".into(),
                    step: "route to 10.0.2.2 by tap0 (tap of slirp4netns 40)".into(),
                },
            ],
            verdict: Verdict {
                outcome: Outcome::Blocked,
                reason: "host loopback disabled by rootlesskit 30 --disable-host-loopback".into(),
            },
            end: None,
        };
        assert_eq!(
            trace_text(&t),
            "\
trace container docker/web (de45fb625f78) net:[3] → 10.0.2.2:8080/tcp (host:8080)
  in container docker/web (de45fb625f78) net:[3]
    1. route to 10.0.2.2 by eth0 via 172.17.0.1 ⇄ veth1 into rootless-child net:[2]
  in rootless-child net:[2]
    2. route to 10.0.2.2 by tap0 (tap of slirp4netns 40)
blocked: host loopback disabled by rootlesskit 30 --disable-host-loopback
"
        );
    }
}
