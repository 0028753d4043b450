//! Port specifications: RootlessKit's `port.Spec`, its text form and its validation rules.
//!
//! Text form (`-p`, `rootlessctl add-ports`):
//!
//! ```text
//! [PARENTIP:]PARENTPORT:[CHILDIP:]CHILDPORT/PROTO        PROTO: tcp tcp4 tcp6 udp udp4 udp6
//! 8080:80/tcp   127.0.0.1:8080:80/tcp   [::1]:8080:[::1]:80/tcp6   0.0.0.0:8080:10.4.0.2:80/tcp
//! ```
//!
//! Listening follows Go's `net.Listen`/`net.ListenPacket`, which RootlessKit's builtin driver
//! calls with the spec's proto and parent IP:
//!
//! ```text
//! parent IP          tcp / udp              tcp4 / udp4        tcp6 / udp6
//! none, 0.0.0.0, ::  [::] dual-stack        0.0.0.0            [::] IPv6 only (0.0.0.0: error)
//! IPv4 address       that address           that address       error
//! IPv6 address       that address           error              that address, IPv6 only
//! ```
//!
//! (Go treats every unspecified address alike for `tcp`, and resolves `[::]` for `tcp4` to
//! `0.0.0.0`; an IPv4-mapped IPv6 address counts as IPv4.)
//! Dialling inside the child: the child IP when given, else `127.0.0.1`, else — when the
//! parent IP is a specific address rather than a wildcard — that address (RootlessKit's rule).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub use nsnet_api::rest::{PortSpec, PortStatus};

use crate::PortError;

/// Transport of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// Address family restriction of a proto (`tcp4` → V4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Any,
    V4,
    V6,
}

/// The protos the builtin driver serves, as `/v1/info` lists them.
pub const PROTOS: [&str; 6] = ["tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"];

/// A validated spec: where to listen and where to dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub transport: Transport,
    pub listen: SocketAddr,
    /// Clear IPV6_V6ONLY on the listener (dual-stack `tcp`/`udp` on `[::]`).
    pub dual_stack: bool,
    pub target: SocketAddr,
}

fn parse_proto(p: &str) -> Option<(Transport, Family)> {
    Some(match p {
        "tcp" => (Transport::Tcp, Family::Any),
        "tcp4" => (Transport::Tcp, Family::V4),
        "tcp6" => (Transport::Tcp, Family::V6),
        "udp" => (Transport::Udp, Family::Any),
        "udp4" => (Transport::Udp, Family::V4),
        "udp6" => (Transport::Udp, Family::V6),
        _ => return None,
    })
}

/// Where Go's listener for `family` and `parent_ip` listens, and whether dual-stack; `None`
/// when Go finds "no suitable address" (the family excludes the address).
fn listen_on(parent_ip: Option<IpAddr>, family: Family) -> Option<(IpAddr, bool)> {
    const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    // Go's IP is 16 bytes either way; `To4() != nil` makes a mapped address IPv4.
    let ip = parent_ip.map(|ip| ip.to_canonical());
    Some(match (ip, family) {
        (None, Family::Any) => (ANY6, true),
        (Some(ip), Family::Any) if ip.is_unspecified() => (ANY6, true),
        (None, Family::V4) => (ANY4, false),
        // Go resolves `::` to `[::, 0.0.0.0]` and the tcp4 filter keeps the second.
        (Some(ip), Family::V4) if ip == ANY6 => (ANY4, false),
        (None, Family::V6) => (ANY6, false),
        (Some(ip), Family::Any) => (ip, false),
        (Some(ip @ IpAddr::V4(_)), Family::V4) | (Some(ip @ IpAddr::V6(_)), Family::V6) => {
            (ip, false)
        }
        (Some(_), _) => return None,
    })
}

fn port(n: i64, which: &'static str) -> Result<u16, PortError> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(PortError::InvalidPort { which, port: n })
}

/// A spec's fields, each checked.
struct Fields {
    transport: Transport,
    family: Family,
    parent_ip: Option<IpAddr>,
    parent_port: u16,
    child_port: u16,
    child_ip: Option<IpAddr>,
}

/// RootlessKit's `ValidatePortSpec` field rules, in the order nsnet has always reported them.
fn fields(s: &PortSpec) -> Result<Fields, PortError> {
    let (transport, family) =
        parse_proto(&s.proto).ok_or_else(|| PortError::UnknownProto(s.proto.clone()))?;
    let ip = |text: &str, which: &'static str| -> Result<Option<IpAddr>, PortError> {
        match text {
            "" => Ok(None),
            t => t
                .parse()
                .map(Some)
                .map_err(|_| PortError::InvalidIp(which, t.to_string())),
        }
    };
    let parent_ip = ip(&s.parent_ip, "ParentIP")?;
    let parent_port = port(s.parent_port, "ParentPort")?;
    let child_port = port(s.child_port, "ChildPort")?;
    let child_ip = ip(&s.child_ip, "ChildIP")?;
    Ok(Fields {
        transport,
        family,
        parent_ip,
        parent_port,
        child_port,
        child_ip,
    })
}

/// The rules of a spec, over the API's wire type (RootlessKit's `portutil`).
pub trait PortSpecExt: Sized {
    /// Parses the text form.
    fn parse(text: &str) -> Result<Self, PortError>;
    /// Checks the spec and works out where to listen and where to dial.
    fn plan(&self) -> Result<Plan, PortError>;
    /// Checks the spec's fields only (RootlessKit's `ValidatePortSpec` without its conflict
    /// rule): proto, addresses, ports. [`PortSpecExt::plan`] also refuses a parent IP that its
    /// proto cannot listen on, which a driver that does not listen itself (pesto) reports in
    /// its own words.
    fn check(&self) -> Result<(), PortError>;
    /// Whether two specs claim the same listener (RootlessKit's conflict rule).
    fn conflicts_with(&self, other: &PortSpec) -> bool;
    /// The text form, for messages and tables.
    fn text(&self) -> String;
}

impl PortSpecExt for PortSpec {
    /// Parses the text form.
    fn parse(text: &str) -> Result<PortSpec, PortError> {
        let bad = |what: &str| PortError::Syntax(format!("{what} in PortSpec string: {text:?}"));
        let (rest, proto) = text.rsplit_once('/').ok_or_else(|| bad("missing proto"))?;
        if parse_proto(proto).is_none() {
            return Err(PortError::UnknownProto(proto.to_string()));
        }
        let (rest, child_port) = rest.rsplit_once(':').ok_or_else(|| bad("unexpected"))?;
        // The rest is `[IP:]PORT[:IP]` where an IPv6 address is in brackets.
        let mut parts: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut in_brackets = false;
        for c in rest.chars() {
            match c {
                '[' if !in_brackets && cur.is_empty() => in_brackets = true,
                ']' if in_brackets => in_brackets = false,
                ':' if !in_brackets => parts.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        if in_brackets {
            return Err(bad("unclosed bracket"));
        }
        parts.push(cur);
        let (parent_ip, parent_port, child_ip) = match parts.as_slice() {
            [p] => (String::new(), p.clone(), String::new()),
            [ip, p] => (ip.clone(), p.clone(), String::new()),
            [ip, p, cip] => (ip.clone(), p.clone(), cip.clone()),
            _ => return Err(bad("unexpected")),
        };
        let num = |s: &str, what: &str| s.parse::<i64>().map_err(|_| bad(what));
        Ok(PortSpec {
            proto: proto.to_string(),
            parent_ip,
            parent_port: num(&parent_port, "unexpected ParentPort")?,
            child_port: num(child_port, "unexpected ChildPort")?,
            child_ip,
        })
    }

    /// Checks the spec and works out where to listen and where to dial.
    fn plan(&self) -> Result<Plan, PortError> {
        let Fields {
            transport,
            family,
            parent_ip,
            parent_port,
            child_port,
            child_ip,
        } = fields(self)?;
        let (listen_ip, dual_stack) =
            listen_on(parent_ip, family).ok_or_else(|| PortError::FamilyMismatch {
                ip: parent_ip.expect("only a given parent IP can mismatch"),
                proto: self.proto.clone(),
            })?;
        let dial_ip = match (child_ip, parent_ip) {
            (Some(ip), _) => ip,
            (None, Some(ip)) if !ip.is_unspecified() => ip,
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        Ok(Plan {
            transport,
            listen: SocketAddr::new(listen_ip, parent_port),
            dual_stack,
            target: SocketAddr::new(dial_ip, child_port),
        })
    }

    fn check(&self) -> Result<(), PortError> {
        fields(self).map(|_| ())
    }

    /// Whether two specs claim the same listener (RootlessKit's conflict rule).
    fn conflicts_with(&self, other: &PortSpec) -> bool {
        self.proto == other.proto
            && self.parent_ip == other.parent_ip
            && self.parent_port == other.parent_port
    }

    /// The text form, for messages and tables.
    fn text(&self) -> String {
        let ip = |s: &str| {
            if s.contains(':') {
                format!("[{s}]:")
            } else if s.is_empty() {
                String::new()
            } else {
                format!("{s}:")
            }
        };
        format!(
            "{}{}:{}{}/{}",
            ip(&self.parent_ip),
            self.parent_port,
            ip(&self.child_ip),
            self.child_port,
            self.proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> PortSpec {
        PortSpec::parse(text).unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            spec("8080:80/tcp"),
            PortSpec {
                proto: "tcp".into(),
                parent_port: 8080,
                child_port: 80,
                ..Default::default()
            }
        );
        let s = spec("127.0.0.1:8080:10.4.0.2:80/udp4");
        assert_eq!(
            (s.parent_ip.as_str(), s.child_ip.as_str(), s.proto.as_str()),
            ("127.0.0.1", "10.4.0.2", "udp4")
        );
        let s = spec("[::1]:8080:[fd00::100]:80/tcp6");
        assert_eq!(
            (s.parent_ip.as_str(), s.child_ip.as_str()),
            ("::1", "fd00::100")
        );
        assert_eq!(s.text(), "[::1]:8080:[fd00::100]:80/tcp6");
        assert_eq!(spec("8080:80/tcp").text(), "8080:80/tcp");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "8080:80",
            "8080/tcp",
            "a:8080:80/tcp:",
            "[::1:8080:80/tcp",
            "x:80/tcp",
            "1:2:3:4:5/tcp",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PortSpec::parse("8080:80/sctp").unwrap_err().to_string(),
            "unknown proto: \"sctp\""
        );
    }

    #[test]
    fn plans_follow_rootlesskit() {
        let p = spec("8080:80/tcp").plan().unwrap();
        assert_eq!(p.listen.to_string(), "[::]:8080");
        assert!(p.dual_stack);
        assert_eq!(p.target.to_string(), "127.0.0.1:80");
        let p = spec("8080:80/tcp4").plan().unwrap();
        assert_eq!(p.listen.to_string(), "0.0.0.0:8080");
        let p = spec("8080:80/udp6").plan().unwrap();
        assert_eq!(
            (p.listen.to_string().as_str(), p.dual_stack),
            ("[::]:8080", false)
        );
        assert_eq!(p.transport, Transport::Udp);
        let p = spec("127.0.0.1:8080:80/tcp").plan().unwrap();
        assert_eq!(p.target.to_string(), "127.0.0.1:80");
        let p = spec("[::1]:8080:80/tcp").plan().unwrap();
        assert_eq!(
            p.target.to_string(),
            "[::1]:80",
            "a specific parent IP is dialled"
        );
        let p = spec("0.0.0.0:8080:10.4.0.2:80/tcp").plan().unwrap();
        assert_eq!(p.target.to_string(), "10.4.0.2:80");
    }

    /// The listener of each form: (address, dual-stack), or the family mismatch error.
    fn listener(text: &str) -> Result<(String, bool), String> {
        spec(text)
            .plan()
            .map(|p| (p.listen.to_string(), p.dual_stack))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn listeners_follow_go_net_listen() {
        let ok = |a: &str, dual: bool| Ok((a.to_string(), dual));
        for t in ["tcp", "udp"] {
            let c = |form: &str| listener(&form.replace("T", t));
            // The wildcard with tcp/udp is dual-stack whichever family spells it.
            assert_eq!(c("8080:80/T"), ok("[::]:8080", true));
            assert_eq!(c("0.0.0.0:8080:80/T"), ok("[::]:8080", true));
            assert_eq!(c("[::]:8080:80/T"), ok("[::]:8080", true));
            assert_eq!(c("0.0.0.0:8080:[::1]:80/T"), ok("[::]:8080", true));
            assert_eq!(c("[::]:8080:[127.0.0.1]:80/T"), ok("[::]:8080", true));
            // tcp4: IPv4 only; [::] is resolved to 0.0.0.0.
            assert_eq!(c("8080:80/T4"), ok("0.0.0.0:8080", false));
            assert_eq!(c("0.0.0.0:8080:80/T4"), ok("0.0.0.0:8080", false));
            assert_eq!(c("[::]:8080:80/T4"), ok("0.0.0.0:8080", false));
            assert_eq!(c("0.0.0.0:8080:[::1]:80/T4"), ok("0.0.0.0:8080", false));
            // tcp6: IPv6 only.
            assert_eq!(c("8080:80/T6"), ok("[::]:8080", false));
            assert_eq!(c("[::]:8080:80/T6"), ok("[::]:8080", false));
            assert_eq!(c("[::]:8080:[127.0.0.1]:80/T6"), ok("[::]:8080", false));
            // A specific address is that address only; a mapped one is IPv4.
            assert_eq!(c("127.0.0.1:8080:80/T"), ok("127.0.0.1:8080", false));
            assert_eq!(c("[::1]:8080:80/T"), ok("[::1]:8080", false));
            assert_eq!(c("[::1]:8080:80/T6"), ok("[::1]:8080", false));
            assert_eq!(c("127.0.0.1:8080:80/T4"), ok("127.0.0.1:8080", false));
            assert_eq!(
                c("[::ffff:127.0.0.1]:8080:80/T"),
                ok("127.0.0.1:8080", false)
            );
            assert_eq!(
                c("[::ffff:127.0.0.1]:8080:80/T4"),
                ok("127.0.0.1:8080", false)
            );
            // Go finds no suitable address for these.
            for bad in [
                "0.0.0.0:8080:80/T6",
                "127.0.0.1:8080:80/T6",
                "[::ffff:127.0.0.1]:8080:80/T6",
                "[::1]:8080:80/T4",
            ] {
                assert!(
                    c(bad).unwrap_err().contains("does not match proto"),
                    "{bad}"
                );
            }
        }
        // Where the listener is has no say in where the child is dialled.
        let p = spec("[::]:8080:[127.0.0.1]:80/tcp").plan().unwrap();
        assert_eq!(p.target.to_string(), "127.0.0.1:80");
        let p = spec("0.0.0.0:8080:[::1]:80/tcp4").plan().unwrap();
        assert_eq!(p.target.to_string(), "[::1]:80");
        let p = spec("[::]:8080:80/tcp6").plan().unwrap();
        assert_eq!(p.target.to_string(), "127.0.0.1:80");
        // tcp4 and tcp6 on one port are two listeners, not a conflict.
        assert!(!spec("0.0.0.0:8080:80/tcp4").conflicts_with(&spec("[::]:8080:80/tcp6")));
    }

    #[test]
    fn validation_messages() {
        let err = |s: PortSpec| s.plan().unwrap_err().to_string();
        let base = spec("8080:80/tcp");
        assert_eq!(
            err(PortSpec {
                proto: "bogus".into(),
                ..base.clone()
            }),
            "unknown proto: \"bogus\""
        );
        assert_eq!(
            err(PortSpec {
                parent_port: 70000,
                ..base.clone()
            }),
            "invalid ParentPort: 70000"
        );
        assert_eq!(
            err(PortSpec {
                child_port: 0,
                ..base.clone()
            }),
            "invalid ChildPort: 0"
        );
        assert_eq!(
            err(PortSpec {
                parent_ip: "x".into(),
                ..base.clone()
            }),
            "invalid ParentIP: \"x\""
        );
        assert!(
            err(PortSpec {
                parent_ip: "127.0.0.1".into(),
                proto: "tcp6".into(),
                ..base.clone()
            })
            .contains("tcp6")
        );
        // check() is the same field rules without the listener: a family mismatch passes.
        assert_eq!(
            PortSpec {
                child_port: 0,
                ..base.clone()
            }
            .check()
            .unwrap_err()
            .to_string(),
            "invalid ChildPort: 0"
        );
        assert!(spec("0.0.0.0:8080:80/tcp6").check().is_ok());
        assert!(spec("0.0.0.0:8080:80/tcp6").plan().is_err());
        assert!(spec("127.0.0.1:8080:80/tcp").conflicts_with(&spec("127.0.0.1:8080:81/tcp")));
        assert!(!spec("127.0.0.1:8080:80/tcp").conflicts_with(&spec("127.0.0.1:8080:80/udp")));
    }

    #[test]
    fn json_matches_rootlesskit() {
        let s = spec("127.0.0.1:8080:80/tcp");
        assert_eq!(
            serde_json::to_string(&PortStatus { id: 1, spec: s }).unwrap(),
            r#"{"id":1,"spec":{"proto":"tcp","parentIP":"127.0.0.1","parentPort":8080,"childPort":80}}"#
        );
    }
}
