//! pasta's forwarding spec grammar (`-t/-u/-T/-U SPEC`, passt's `fwd_rule.c`), shared by the
//! `pasta` command line and `pesto`, and the rule tables it fills.
//!
//! ```text
//! SPEC   := none | [ADDR[%IFACE]/ | *[%IFACE]/ | %IFACE/] CHUNK[,CHUNK]...
//! CHUNK  := all[:TADDR] | auto | ~PORTS | PORTS[:TARGET]
//! PORTS  := N | N-M                      TARGET := PORTS | TADDR | TADDR/PORTS
//! ```
//!
//! Two passes, as pasta parses: first `~` exclusions and `auto` (which marks every rule of the
//! spec "scan": forward only while the port is bound on the other side), then the included
//! ranges, each split around the exclusions. A spec with no included range (`all`, `~25`,
//! `auto`) covers every port 1–65535 but the excluded and the ephemeral ones (the host's
//! `ip_local_port_range`), best effort ("weak": a port that cannot be bound is skipped). A
//! spec without an address is dual-stack when the table has both families.
//!
//! `-T/-U` (namespace → host) take no address: their listeners are bound to the namespace's
//! `lo`. Errors are pasta's messages (`Invalid port specifier '…'`, `-t none conflicts with
//! previous options`, …), one line each.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A forwarding table's capabilities (pasta's `FWD_CAP_*` bits, sent as they are on the wire).
pub const CAP_IPV4: u32 = 1 << 0;
pub const CAP_IPV6: u32 = 1 << 1;
pub const CAP_TCP: u32 = 1 << 2;
pub const CAP_UDP: u32 = 1 << 3;
pub const CAP_SCAN: u32 = 1 << 4;
pub const CAP_IFNAME: u32 = 1 << 5;

/// Rule flags (`FWD_DUAL_STACK_ANY`, `FWD_WEAK`, `FWD_SCAN`).
pub const FLAG_DUAL_STACK: u8 = 1 << 0;
pub const FLAG_WEAK: u8 = 1 << 1;
pub const FLAG_SCAN: u8 = 1 << 2;

/// IP protocol numbers, as rules carry them.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// The most rules a table holds (pasta's `MAX_FWD_RULES`).
pub const MAX_RULES: usize = 255;

/// One forwarding rule: ports `first..=last` of `addr` (every address of both families with
/// [`FLAG_DUAL_STACK`], `addr` then `::`) go to port `to + (n - first)` of `taddr` (the
/// default target when unspecified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub addr: IpAddr,
    pub taddr: IpAddr,
    pub ifname: String,
    pub first: u16,
    pub last: u16,
    pub to: u16,
    pub proto: u8,
    pub flags: u8,
}

impl Rule {
    /// The listening address, `None` for dual-stack "any".
    pub fn listen_addr(&self) -> Option<IpAddr> {
        (self.flags & FLAG_DUAL_STACK == 0).then_some(self.addr)
    }

    /// The target address when the rule names one.
    pub fn target_addr(&self) -> Option<IpAddr> {
        (!self.taddr.is_unspecified()).then_some(self.taddr)
    }

    fn conflicts(&self, o: &Rule) -> bool {
        if self.proto != o.proto {
            return false;
        }
        let addrs = match (self.listen_addr(), o.listen_addr()) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => a == b,
        };
        addrs && !(self.last < o.first || o.last < self.first)
    }
}

/// `tcp [0.0.0.0]:8080  =>  8080 ` — pasta's `fwd_rule_fmt`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = proto_name(self.proto);
        let addr = match self.listen_addr() {
            None => "*".to_string(),
            Some(a) => a.to_string(),
        };
        let pct = if self.ifname.is_empty() { "" } else { "%" };
        let taddr = self
            .target_addr()
            .map(|a| format!("{a}:"))
            .unwrap_or_default();
        let weak = if self.flags & FLAG_WEAK != 0 {
            " (best effort)"
        } else {
            ""
        };
        let scan = if self.flags & FLAG_SCAN != 0 {
            " (auto-scan)"
        } else {
            ""
        };
        if self.first == self.last {
            write!(
                f,
                "{proto} [{addr}]{pct}{}:{}  =>  {taddr}{} {weak}{scan}",
                self.ifname, self.first, self.to
            )
        } else {
            let tolast = self.to.wrapping_add(self.last - self.first);
            write!(
                f,
                "{proto} [{addr}]{pct}{}:{}-{}  =>  {taddr}{}-{tolast} {weak}{scan}",
                self.ifname, self.first, self.last, self.to
            )
        }
    }
}

/// A bad spec or a rule a table refuses: pasta's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn err<T>(s: String) -> Result<T, SpecError> {
    Err(SpecError(s))
}

/// The rules of one side (pasta's `struct fwd_table`): what it can do and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub caps: u32,
    pub rules: Vec<Rule>,
}

/// pasta's `ipproto_name()` (ip.c): the names its messages use.
pub fn proto_name(p: u8) -> &'static str {
    match p {
        1 => "ICMP",
        PROTO_TCP => "TCP",
        PROTO_UDP => "UDP",
        58 => "ICMPv6",
        _ => "<unknown protocol>",
    }
}

impl Table {
    pub fn new(caps: u32) -> Table {
        Table {
            caps,
            rules: Vec::new(),
        }
    }

    /// Validates `new` against the capabilities and the rules held (pasta's `fwd_rule_add`).
    pub fn add(&mut self, new: Rule) -> Result<(), SpecError> {
        if new.first > new.last {
            return err(format!(
                "Rule has invalid port range {}-{}",
                new.first, new.last
            ));
        }
        if new.first == 0 {
            return err("Forwarding rule attempts to map from port 0".into());
        }
        if new.to == 0 || new.to.checked_add(new.last - new.first).is_none() {
            return err("Forwarding rule attempts to map to port 0".into());
        }
        if new.flags & !(FLAG_WEAK | FLAG_SCAN | FLAG_DUAL_STACK) != 0 {
            return err(format!("Rule has invalid flags 0x{:x}", new.flags));
        }
        if new.flags & FLAG_DUAL_STACK != 0 {
            if new.addr != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
                return err(format!(
                    "Dual stack rule has non-wildcard address {}",
                    new.addr
                ));
            }
            if self.caps & CAP_IPV4 == 0 {
                return err("Dual stack forward, but IPv4 not enabled".into());
            }
            if self.caps & CAP_IPV6 == 0 {
                return err("Dual stack forward, but IPv6 not enabled".into());
            }
        } else if new.addr.is_ipv4() && self.caps & CAP_IPV4 == 0 {
            return err("IPv4 forward, but IPv4 not enabled".into());
        } else if new.addr.is_ipv6() && self.caps & CAP_IPV6 == 0 {
            return err("IPv6 forward, but IPv6 not enabled".into());
        }
        match new.proto {
            PROTO_TCP if self.caps & CAP_TCP == 0 => {
                return err("Can't add TCP forwarding rule, TCP not enabled".into());
            }
            PROTO_UDP if self.caps & CAP_UDP == 0 => {
                return err("Can't add UDP forwarding rule, UDP not enabled".into());
            }
            PROTO_TCP | PROTO_UDP => {}
            p => {
                return err(format!(
                    "Unsupported protocol 0x{p:x} ({}) for forwarding rule",
                    proto_name(p)
                ));
            }
        }
        if let Some(t) = new.target_addr() {
            if t.is_multicast() {
                return err(format!("Multicast target address {t} for forwarding rule"));
            }
            if new.flags & FLAG_DUAL_STACK != 0 {
                let (fam, any) = if t.is_ipv4() {
                    ("IPv4", "0.0.0.0")
                } else {
                    ("IPv6", "[::]")
                };
                return err(format!(
                    "Dual stack forward to {fam} address {t} unsupported (did you mean {any}/... instead?)"
                ));
            }
            if new.addr.is_ipv4() != t.is_ipv4() {
                let fam = |a: &IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
                return err(format!(
                    "Forward from {} ({}) to {} ({t}) unsupported",
                    fam(&new.addr),
                    new.addr,
                    fam(&t)
                ));
            }
        }
        if !new.ifname.is_empty() && self.caps & CAP_IFNAME == 0 {
            return err(format!("Device binding for '{new}' unsupported"));
        }
        if let Some(old) = self.rules.iter().find(|r| r.conflicts(&new)) {
            return err(format!(
                "Forwarding configuration conflict: {new} versus {old}"
            ));
        }
        if self.rules.len() >= MAX_RULES {
            return err(format!("Too many rules (maximum {MAX_RULES})"));
        }
        self.rules.push(new);
        Ok(())
    }

    /// Removes the rule equal to `rule` (pasta's `fwd_rule_del`).
    pub fn delete(&mut self, rule: &Rule) -> Result<(), SpecError> {
        for (i, r) in self.rules.iter().enumerate() {
            if r == rule {
                self.rules.remove(i);
                return Ok(());
            }
            if r.conflicts(rule) {
                return err(format!(
                    "Specifier {rule} conflicts with rule {r}, but doesn't match it, can't delete"
                ));
            }
        }
        err(format!("Couldn't find forwarding rule to delete: {rule}"))
    }
}

/// The host's ephemeral port range (`net.ipv4.ip_local_port_range`), which exclusion-only
/// specs leave out; RFC 6335's range when it cannot be read.
pub fn ephemeral_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut w = text.split_whitespace().map(|n| n.parse::<u16>());
    match (w.next(), w.next()) {
        (Some(Ok(a)), Some(Ok(b))) if a <= b => (a, b),
        _ => (49152, 65535),
    }
}

/// How a spec is read: which option it came with, whether it deletes, and the ephemeral
/// range that exclusion-only specs skip.
#[derive(Debug, Clone, Copy)]
pub struct Parser {
    pub ephemeral: (u16, u16),
}

enum Chunk {
    All(IpAddr),
    Auto,
    Exclude(u16, u16),
    Include {
        l: (u16, u16),
        t: (u16, u16),
        taddr: IpAddr,
    },
}

fn any6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

/// `N` or `N-M`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((a, b))
}

/// An address as a spec writes it: IPv4, `[IPv6]` or bare IPv6.
fn address(s: &str) -> Option<IpAddr> {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if s.contains(':') {
        return s.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    // Only a dotted quad is an IPv4 address here, so that `22:23` stays a port.
    if s.split('.').count() == 4 {
        return s.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

fn chunk(s: &str) -> Option<Chunk> {
    if let Some(rest) = s.strip_prefix("all") {
        return match rest.strip_prefix(':') {
            None if rest.is_empty() => Some(Chunk::All(any6())),
            Some(a) => address(a).map(Chunk::All),
            None => None,
        };
    }
    if s == "auto" {
        return Some(Chunk::Auto);
    }
    if let Some(r) = s.strip_prefix('~') {
        let (a, b) = port_range(r)?;
        return Some(Chunk::Exclude(a, b));
    }
    let (ports, target) = match s.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (s, None),
    };
    let l = port_range(ports)?;
    let (taddr, t) = match target {
        None => (any6(), l),
        Some(t) => {
            // TADDR/PORTS, then TADDR alone, then PORTS alone (pasta's order).
            if let Some((a, p)) = t.rsplit_once('/')
                && let (Some(a), Some(p)) = (address(a), port_range(p))
            {
                (a, p)
            } else if let Some(a) = address(t) {
                (a, l)
            } else {
                (any6(), port_range(t)?)
            }
        }
    };
    Some(Chunk::Include { l, t, taddr })
}

/// `ADDR[%IFACE]/`, `*[%IFACE]/` or `%IFACE/` before the ports: (address, interface, rest).
fn address_prefix(spec: &str) -> Option<(Option<IpAddr>, String, &str)> {
    // The address part ends at the first `/` that is not inside the target (`5000:1.2.3.4/6000`
    // has a `:` before it, which no listening address of ours has unless bracketed or IPv6).
    let (head, rest) = spec.split_once('/')?;
    let (a, ifname) = match head.split_once('%') {
        Some((a, i)) => (a, i.to_string()),
        None => (head, String::new()),
    };
    let addr = match a {
        "" | "*" => None,
        a => Some(address(a)?),
    };
    Some((addr, ifname, rest))
}

impl Parser {
    /// The ephemeral range of this host.
    pub fn new() -> Parser {
        Parser {
            ephemeral: ephemeral_range(),
        }
    }

    /// Parses one `-OPT SPEC` (OPT one of `t u T U`) into `table`, or deletes the rules it
    /// describes from it (`del`, pesto's `--delete`).
    pub fn parse(
        &self,
        opt: char,
        del: bool,
        spec: &str,
        table: &mut Table,
    ) -> Result<(), SpecError> {
        let proto = match opt {
            't' | 'T' => PROTO_TCP,
            'u' | 'U' => PROTO_UDP,
            _ => return err(format!("invalid option -- '{opt}'")),
        };
        let to_host_lo = opt == 'T' || opt == 'U';
        if spec == "none" {
            if table.rules.iter().any(|r| r.proto == proto) {
                return err(format!("-{opt} none conflicts with previous options"));
            }
            return Ok(());
        }
        let (mut addr, mut ifname, ports) = match address_prefix(spec) {
            Some((a, i, rest)) => {
                if to_host_lo {
                    return err(format!("Listening address not allowed for -{opt} {spec}"));
                }
                if i == "." || i == ".." {
                    return err(format!("Invalid interface name: {i}"));
                }
                (a, i, rest)
            }
            None => (None, String::new(), spec),
        };
        if to_host_lo {
            ifname = "lo".into();
        }
        if addr.is_none() && table.caps & CAP_IPV4 == 0 {
            addr = Some(any6());
        } else if addr.is_none() && table.caps & CAP_IPV6 == 0 {
            addr = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        }
        if ifname.len() >= 16 {
            return err(format!("Invalid interface name: {ifname}"));
        }
        let bad = || SpecError(format!("Invalid port specifier '{ports}'"));
        let chunks: Vec<Chunk> = ports
            .split(',')
            .map(chunk)
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let mut exclude = vec![false; 65536];
        let mut flags = 0u8;
        for c in &chunks {
            match c {
                Chunk::Auto => {
                    if table.caps & CAP_SCAN == 0 {
                        return err("'auto' port forwarding is only allowed for pasta".into());
                    }
                    flags |= FLAG_SCAN;
                }
                Chunk::Exclude(a, b) => {
                    for p in *a..=*b {
                        exclude[p as usize] = true;
                    }
                }
                _ => {}
            }
        }
        let base = Rule {
            addr: addr.unwrap_or_else(any6),
            taddr: any6(),
            ifname,
            first: 0,
            last: 0,
            to: 0,
            proto,
            flags: flags | if addr.is_none() { FLAG_DUAL_STACK } else { 0 },
        };
        let mut all_taddr = any6();
        let mut exclude_only = true;
        let apply = |table: &mut Table,
                     l: (u16, u16),
                     t_first: u16,
                     taddr: IpAddr,
                     extra: u8,
                     exclude: &[bool]|
         -> Result<(), SpecError> {
            let mut p = l.0 as u32;
            while p <= l.1 as u32 {
                if exclude[p as usize] {
                    p += 1;
                    continue;
                }
                let mut end = p;
                while end < l.1 as u32 && !exclude[end as usize + 1] {
                    end += 1;
                }
                let rule = Rule {
                    first: p as u16,
                    last: end as u16,
                    to: (t_first as u32 + (p - l.0 as u32)) as u16,
                    taddr,
                    flags: base.flags | extra,
                    ..base.clone()
                };
                let done = if del {
                    table.delete(&rule)
                } else {
                    table.add(rule.clone())
                };
                if let Err(e) = done {
                    let verb = if del { "delete" } else { "add" };
                    return err(format!("Unable to {verb} rule {rule}: {e}"));
                }
                p = end + 1;
            }
            Ok(())
        };
        for c in &chunks {
            match c {
                Chunk::All(t) => all_taddr = *t,
                Chunk::Include { l, t, taddr } => {
                    exclude_only = false;
                    if t.1 - t.0 != l.1 - l.0 {
                        return Err(bad());
                    }
                    apply(table, *l, t.0, *taddr, 0, &exclude)?;
                }
                _ => {}
            }
        }
        if exclude_only {
            for p in self.ephemeral.0..=self.ephemeral.1 {
                exclude[p as usize] = true;
            }
            apply(table, (1, 65535), 1, all_taddr, FLAG_WEAK, &exclude)?;
        }
        Ok(())
    }
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u32 = CAP_IPV4 | CAP_IPV6 | CAP_TCP | CAP_UDP | CAP_SCAN | CAP_IFNAME;
    const P: Parser = Parser {
        ephemeral: (49152, 65535),
    };

    fn rules(opt: char, spec: &str) -> Result<Vec<String>, String> {
        let mut t = Table::new(ALL);
        P.parse(opt, false, spec, &mut t).map_err(|e| e.0)?;
        Ok(t.rules.iter().map(|r| r.to_string()).collect())
    }

    #[test]
    fn the_man_pages_examples() {
        assert_eq!(rules('t', "22").unwrap(), ["TCP [*]:22  =>  22 "]);
        assert_eq!(rules('t', "22:23").unwrap(), ["TCP [*]:22  =>  23 "]);
        assert_eq!(
            rules('t', "22,25").unwrap(),
            ["TCP [*]:22  =>  22 ", "TCP [*]:25  =>  25 "]
        );
        assert_eq!(rules('t', "22-80").unwrap(), ["TCP [*]:22-80  =>  22-80 "]);
        assert_eq!(
            rules('t', "22-80:32-90").unwrap(),
            ["TCP [*]:22-80  =>  32-90 "]
        );
        assert_eq!(
            rules('t', "192.0.2.1/5").unwrap(),
            ["TCP [192.0.2.1]:5  =>  5 "]
        );
        assert_eq!(
            rules('t', "5-25,~10-20").unwrap(),
            ["TCP [*]:5-9  =>  5-9 ", "TCP [*]:21-25  =>  21-25 "]
        );
        assert_eq!(
            rules('t', "~25").unwrap(),
            [
                "TCP [*]:1-24  =>  1-24  (best effort)",
                "TCP [*]:26-49151  =>  26-49151  (best effort)"
            ]
        );
        assert_eq!(
            rules('t', "all").unwrap(),
            ["TCP [*]:1-49151  =>  1-49151  (best effort)"]
        );
        assert_eq!(
            rules('t', "::1/all").unwrap(),
            ["TCP [::1]:1-49151  =>  1-49151  (best effort)"]
        );
        assert_eq!(
            rules('t', "auto").unwrap(),
            ["TCP [*]:1-49151  =>  1-49151  (best effort) (auto-scan)"]
        );
        assert_eq!(
            rules('t', "80-82,auto").unwrap(),
            ["TCP [*]:80-82  =>  80-82  (auto-scan)"]
        );
        assert_eq!(rules('u', "none").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn addresses_interfaces_and_targets() {
        assert_eq!(
            rules('t', "[::]/8080").unwrap(),
            ["TCP [::]:8080  =>  8080 "]
        );
        assert_eq!(
            rules('t', "0.0.0.0/8080").unwrap(),
            ["TCP [0.0.0.0]:8080  =>  8080 "]
        );
        assert_eq!(
            rules('t', "192.0.2.1%eth0/22").unwrap(),
            ["TCP [192.0.2.1]%eth0:22  =>  22 "]
        );
        assert_eq!(
            rules('t', "%eth0/22").unwrap(),
            ["TCP [*]%eth0:22  =>  22 "]
        );
        assert_eq!(rules('t', "*/22").unwrap(), ["TCP [*]:22  =>  22 "]);
        // passt 2026_07_16's target-address form.
        assert_eq!(
            rules('t', "0.0.0.0/5000:192.0.2.5/6000").unwrap(),
            ["TCP [0.0.0.0]:5000  =>  192.0.2.5:6000 "]
        );
        assert_eq!(
            rules('t', "127.0.0.1/8080:192.0.2.5").unwrap(),
            ["TCP [127.0.0.1]:8080  =>  192.0.2.5:8080 "]
        );
        assert_eq!(
            rules('u', "[::1]/53:[fd00::1]/5353").unwrap(),
            ["UDP [::1]:53  =>  fd00::1:5353 "]
        );
        // -T/-U bind the namespace's lo.
        assert_eq!(rules('T', "5432").unwrap(), ["TCP [*]%lo:5432  =>  5432 "]);
    }

    #[test]
    fn pastas_errors() {
        assert_eq!(
            rules('t', "80x").unwrap_err(),
            "Invalid port specifier '80x'"
        );
        assert_eq!(
            rules('t', "80-70").unwrap_err(),
            "Invalid port specifier '80-70'"
        );
        assert_eq!(
            rules('t', "80-81:90").unwrap_err(),
            "Invalid port specifier '80-81:90'"
        );
        assert_eq!(
            rules('T', "127.0.0.1/80").unwrap_err(),
            "Listening address not allowed for -T 127.0.0.1/80"
        );
        assert_eq!(
            rules('t', "0/80").unwrap_err(),
            "Invalid port specifier '0/80'"
        );
        assert_eq!(
            rules('t', "0").unwrap_err(),
            "Unable to add rule TCP [*]:0  =>  0 : Forwarding rule attempts to map from port 0"
        );
        let mut t = Table::new(ALL);
        P.parse('t', false, "80", &mut t).unwrap();
        assert_eq!(
            P.parse('t', false, "none", &mut t).unwrap_err().0,
            "-t none conflicts with previous options"
        );
        assert!(
            P.parse('t', false, "0.0.0.0/80", &mut t)
                .unwrap_err()
                .0
                .contains("Forwarding configuration conflict")
        );
        // UDP and TCP never conflict; v4 and v6 wildcards neither.
        P.parse('u', false, "80", &mut t).unwrap();
        let mut t = Table::new(ALL);
        P.parse('t', false, "0.0.0.0/80", &mut t).unwrap();
        P.parse('t', false, "[::]/80", &mut t).unwrap();
        assert_eq!(t.rules.len(), 2);
        let mut pesto_side = Table::new(ALL & !CAP_SCAN);
        assert_eq!(
            P.parse('t', false, "auto", &mut pesto_side).unwrap_err().0,
            "'auto' port forwarding is only allowed for pasta"
        );
        assert!(
            P.parse('t', false, "0.0.0.0/80:[::1]/80", &mut pesto_side)
                .unwrap_err()
                .0
                .contains("Forward from IPv4 (0.0.0.0) to IPv6 (::1) unsupported")
        );
    }

    #[test]
    fn one_family_tables_and_deletion() {
        let mut t = Table::new(CAP_IPV4 | CAP_TCP | CAP_UDP);
        P.parse('t', false, "8080", &mut t).unwrap();
        assert_eq!(t.rules[0].to_string(), "TCP [0.0.0.0]:8080  =>  8080 ");
        assert!(
            P.parse('t', false, "[::]/80", &mut t)
                .unwrap_err()
                .0
                .contains("IPv6 forward, but IPv6 not enabled")
        );
        P.parse('t', true, "8080", &mut t).unwrap();
        assert!(t.rules.is_empty());
        assert_eq!(
            P.parse('t', true, "8080", &mut t).unwrap_err().0,
            "Unable to delete rule TCP [0.0.0.0]:8080  =>  8080 : Couldn't find forwarding rule to delete: TCP [0.0.0.0]:8080  =>  8080 "
        );
        P.parse('t', false, "8080-8090", &mut t).unwrap();
        assert!(
            P.parse('t', true, "8080", &mut t)
                .unwrap_err()
                .0
                .contains("conflicts with rule")
        );
    }
}
