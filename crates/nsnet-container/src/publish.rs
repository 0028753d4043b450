//! `-p` publish specs in Docker's syntax, `[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]`, and their
//! two other forms: the port driver's spec (the container's own IP as `childIP`, so the
//! published port lands on the container without a second DNAT hop) and `ps`'s
//! `127.0.0.1:8080->80/tcp`.

use std::net::IpAddr;

use nsnet_port::PortSpec;
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// Empty for all addresses.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
}

impl Publish {
    pub fn parse(text: &str) -> Result<Publish, Error> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "-p {text:?}: {why}; expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp], e.g. 127.0.0.1:8080:80"
            ))
        };
        let (rest, proto) = match text.rsplit_once('/') {
            Some((r, p)) if p == "tcp" || p == "udp" => (r, p),
            Some(_) => return Err(bad("the protocol must be tcp or udp")),
            None => (text, "tcp"),
        };
        let (host, container_port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("a host port is required (nsnet does not pick one)"))?;
        let (host_ip, host_port) = match host.rsplit_once(':') {
            Some((ip, p)) => (ip.trim_start_matches('[').trim_end_matches(']'), p),
            None => ("", host),
        };
        if !host_ip.is_empty() && host_ip.parse::<IpAddr>().is_err() {
            return Err(bad("the host IP is not an IP address"));
        }
        let port = |s: &str, which: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("the {which} port must be 1-65535")))
        };
        Ok(Publish {
            host_ip: host_ip.to_string(),
            host_port: port(host_port, "host")?,
            container_port: port(container_port, "container")?,
            proto: proto.to_string(),
        })
    }

    /// The port driver's spec for a container at `ip`.
    pub fn port_spec(&self, ip: IpAddr) -> PortSpec {
        PortSpec {
            proto: self.proto.clone(),
            parent_ip: self.host_ip.clone(),
            parent_port: self.host_port.into(),
            child_port: self.container_port.into(),
            child_ip: ip.to_string(),
        }
    }

    /// `127.0.0.1:8080->80/tcp` (`0.0.0.0:…` for all addresses, as Docker shows it).
    pub fn display(&self) -> String {
        let ip = match self.host_ip.as_str() {
            "" => "0.0.0.0".to_string(),
            s if s.contains(':') => format!("[{s}]"),
            s => s.to_string(),
        };
        format!(
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms() {
        let p = Publish::parse("127.0.0.1:8080:80").unwrap();
        assert_eq!(p.display(), "127.0.0.1:8080->80/tcp");
        let s = p.port_spec("10.4.0.2".parse().unwrap());
        assert_eq!(
            (
                s.parent_ip.as_str(),
                s.parent_port,
                s.child_ip.as_str(),
                s.child_port
            ),
            ("127.0.0.1", 8080, "10.4.0.2", 80)
        );
        assert_eq!(
            Publish::parse("53:53/udp").unwrap().display(),
            "0.0.0.0:53->53/udp"
        );
        assert_eq!(
            Publish::parse("[::1]:8080:80").unwrap().display(),
            "[::1]:8080->80/tcp"
        );
        for bad in [
            "80",
            "x:80",
            "8080:0",
            "1.2.3:8080:80",
            "8080:80/sctp",
            "::80",
        ] {
            assert!(Publish::parse(bad).is_err(), "{bad}");
        }
    }
}
