//! The `pesto` port driver (RootlessKit v3's `--port-driver=pesto`, with `--net=pasta`):
//! published ports become rules in a running pasta's forwarding table.
//!
//! Nothing listens in nsnet itself. pasta runs with `-c SOCKET` (its forwarding-table socket;
//! the launcher names it `$STATE/pasta.sock`), and each port is one rule added to, or deleted
//! from, pasta's inbound ("HOST") table; pasta then listens on the host and forwards into the
//! namespace, to the namespace's address (pasta's default for a rule without a target). This
//! module owns the mapping from a RootlessKit port spec to that rule, and the driver's ids.
//!
//! RootlessKit's driver (`pkg/port/pesto`) execs `pesto -A|-D --tcp-ports=IP/PPORT:CPORT
//! SOCKET` per port. nsnet is one binary that already holds pesto's client
//! (`nsnet_api::pesto`), so the driver speaks the protocol in-process: no pesto binary has to
//! be installed, and a failure is pesto's own message rather than an exit status and captured
//! output. What is sent is exactly what that pesto command would send — the same text through
//! the same spec parser, applied to the table read from the socket — with one addition: the
//! driver waits for pasta to close the connection (it does once it has applied the update)
//! and reads the table back, so a `201` means pasta holds the rule and a removed port is
//! closed when `DELETE` returns.
//!
//! RootlessKit's semantics, reproduced: `ValidatePortSpec` (this crate's field and conflict
//! rules and messages); a child IP other than empty or the namespace's address is refused; an
//! empty parent IP is `0.0.0.0` (`tcp`, `tcp4`, `udp`, `udp4`: IPv4 only, even for `tcp`) or
//! `::` (`tcp6`, `udp6`); IPv6 needs `--ipv6`; ids count from 1; an unknown id is `invalid
//! ID: N`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nsnet_api::pesto::{Client, Parser, Rule};

use crate::{PortError, PortSpec, PortSpecExt, PortStatus};

/// The protocols RootlessKit's pesto driver lists, without and with `--ipv6`.
pub const PROTOS: [&str; 4] = ["tcp", "tcp4", "udp", "udp4"];
pub const PROTOS_IPV6: [&str; 6] = ["tcp", "tcp4", "udp", "udp4", "tcp6", "udp6"];

/// The name pasta gives its inbound table (what pesto's `-t`/`-u` edit).
const INBOUND: &str = "HOST";

/// How long one exchange with pasta may take. pasta serves one configuration client at a
/// time and applies an update synchronously; a pasta that does not answer within this fails
/// the port operation instead of holding the driver's lock forever.
const TIMEOUT: Duration = Duration::from_secs(10);

fn failed(msg: impl std::fmt::Display) -> PortError {
    PortError::Backend(format!("pesto failed: {msg}"))
}

/// The option and value `pesto -A|-D` gets for `spec` (RootlessKit's `createArgs`): `'t'` or
/// `'u'`, and `IP/PARENTPORT:CHILDPORT`.
pub fn pesto_option(spec: &PortSpec, ipv6: bool) -> Result<(char, String), PortError> {
    let opt = match spec.proto.as_str() {
        "tcp" | "tcp4" | "tcp6" => 't',
        "udp" | "udp4" | "udp6" => 'u',
        p => return Err(PortError::Syntax(format!("unsupported protocol: {p}"))),
    };
    let parent_ip = match (spec.parent_ip.as_str(), spec.proto.ends_with('6')) {
        ("", false) => "0.0.0.0",
        ("", true) => "::",
        (ip, _) => ip,
    };
    // Go's net.ParseIP, and `To4() != nil`: an IPv4-mapped IPv6 address counts as IPv4 (and is
    // written as IPv4 by `String()`).
    let ip = parent_ip
        .parse::<IpAddr>()
        .map_err(|_| PortError::Syntax(format!("invalid IP: {parent_ip:?}")))?
        .to_canonical();
    if !ipv6 && ip.is_ipv6() {
        return Err(PortError::Ipv6Disabled {
            proto: spec.proto.clone(),
            parent_ip: parent_ip.to_string(),
        });
    }
    let family_ok = match spec.proto.as_str() {
        "tcp4" | "udp4" => ip.is_ipv4(),
        "tcp6" | "udp6" => ip.is_ipv6(),
        _ => true,
    };
    if !family_ok {
        return Err(PortError::UnsupportedIp(parent_ip.to_string()));
    }
    Ok((
        opt,
        format!("{ip}/{}:{}", spec.parent_port, spec.child_port),
    ))
}

struct State {
    next_id: u64,
    ports: BTreeMap<u64, PortStatus>,
}

struct Inner {
    socket: PathBuf,
    child_ip: Ipv4Addr,
    ipv6: bool,
    /// Held for a whole add or remove: the protocol replaces pasta's whole table with what
    /// the client sends, so two updates built from the same table would lose one of them.
    ops: Mutex<()>,
    state: Mutex<State>,
}

/// Ports published as rules of the pasta whose forwarding-table socket is `socket`.
pub struct PestoPorts {
    inner: Arc<Inner>,
}

impl PestoPorts {
    /// A driver for the pasta serving `socket`, whose namespace's address is `child_ip`;
    /// `ipv6`: the instance runs with `--ipv6` (IPv6 parent addresses allowed).
    pub fn new(socket: PathBuf, child_ip: Ipv4Addr, ipv6: bool) -> Self {
        PestoPorts {
            inner: Arc::new(Inner {
                socket,
                child_ip,
                ipv6,
                ops: Mutex::new(()),
                state: Mutex::new(State {
                    next_id: 1,
                    ports: BTreeMap::new(),
                }),
            }),
        }
    }

    pub fn protos(&self) -> &'static [&'static str] {
        if self.inner.ipv6 {
            &PROTOS_IPV6
        } else {
            &PROTOS
        }
    }

    /// Validates `spec` as RootlessKit's driver does, then adds its rule to pasta's table.
    pub async fn add(&self, spec: PortSpec) -> Result<PortStatus, PortError> {
        let inner = self.inner.clone();
        // The socket exchanges block; they run off the async workers.
        tokio::task::spawn_blocking(move || inner.add(spec))
            .await
            .map_err(|e| failed(format!("driver task: {e}")))?
    }

    pub fn list(&self) -> Vec<PortStatus> {
        let st = self.inner.state.lock().expect("port state lock");
        st.ports.values().cloned().collect()
    }

    /// Deletes the port's rule from pasta's table; when this returns pasta has closed it.
    pub async fn remove(&self, id: u64) -> Result<(), PortError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.remove(id))
            .await
            .map_err(|e| failed(format!("driver task: {e}")))?
    }
}

impl Inner {
    fn add(&self, spec: PortSpec) -> Result<PortStatus, PortError> {
        let _op = self.ops.lock().expect("pesto driver lock");
        {
            let st = self.state.lock().expect("port state lock");
            spec.check()?;
            crate::no_conflict(&spec, st.ports.iter().map(|(id, p)| (*id, &p.spec)))?;
        }
        let namespace = self.child_ip.to_string();
        if !spec.child_ip.is_empty() && spec.child_ip != namespace {
            return Err(PortError::ChildIpNotNamespace {
                child_ip: spec.child_ip.clone(),
                namespace,
            });
        }
        let (opt, value) = pesto_option(&spec, self.ipv6)?;
        self.apply(opt, false, &value)?;
        let mut st = self.state.lock().expect("port state lock");
        let id = st.next_id;
        st.next_id += 1;
        let status = PortStatus { id, spec };
        st.ports.insert(id, status.clone());
        Ok(status)
    }

    fn remove(&self, id: u64) -> Result<(), PortError> {
        let _op = self.ops.lock().expect("pesto driver lock");
        let spec = {
            let st = self.state.lock().expect("port state lock");
            st.ports
                .get(&id)
                .ok_or(PortError::InvalidId(id))?
                .spec
                .clone()
        };
        let (opt, value) = pesto_option(&spec, self.ipv6)?;
        self.apply(opt, true, &value)?;
        self.state
            .lock()
            .expect("port state lock")
            .ports
            .remove(&id);
        Ok(())
    }

    /// `pesto -A|-D --OPT=VALUE SOCKET`, as the pesto personality runs it: read the tables,
    /// parse the spec into (or out of) the inbound table, send the tables back. Then wait for
    /// pasta to be done with the update and check, on a new connection, that its table has
    /// the change.
    fn apply(&self, opt: char, delete: bool, value: &str) -> Result<(), PortError> {
        let connect = || Client::connect_timeout(&self.socket, Some(TIMEOUT)).map_err(failed);
        let inbound = |c: &Client| c.tables.iter().position(|t| t.name == INBOUND);
        let mut c = connect()?;
        let i =
            inbound(&c).ok_or_else(|| failed(format!("Can't use -{opt}, no inbound interface")))?;
        let before = c.tables[i].table.rules.clone();
        Parser::new()
            .parse(opt, delete, value, &mut c.tables[i].table)
            .map_err(|e| failed(e.0))?;
        let after = &c.tables[i].table.rules;
        // What this update changes: the rules it adds, or the ones it deletes.
        let changed: Vec<Rule> = if delete {
            before
                .iter()
                .filter(|r| !after.contains(r))
                .cloned()
                .collect()
        } else {
            after
                .iter()
                .filter(|r| !before.contains(r))
                .cloned()
                .collect()
        };
        c.send_and_wait().map_err(failed)?;
        let c = connect()?;
        let held = inbound(&c)
            .map(|i| c.tables[i].table.rules.clone())
            .unwrap_or_default();
        c.close();
        let applied = changed.iter().all(|r| held.contains(r) != delete);
        if !applied {
            let (what, long) = (
                if delete { "deleting" } else { "adding" },
                if opt == 't' { "tcp-ports" } else { "udp-ports" },
            );
            return Err(failed(format!(
                "pasta kept its previous rules instead of {what} --{long}={value}{}",
                if delete {
                    ""
                } else {
                    " (can it listen on that port?)"
                }
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsnet_api::pesto::proto::{PIF_HOST, PIF_SPLICE, Server};
    use nsnet_api::pesto::spec::{CAP_IPV4, CAP_IPV6, CAP_TCP, CAP_UDP, Table};
    use nsnet_api::pesto::{Backend, PifTable};

    fn spec(proto: &str, parent_ip: &str, parent_port: i64, child_ip: &str) -> PortSpec {
        PortSpec {
            proto: proto.into(),
            parent_ip: parent_ip.into(),
            parent_port,
            child_port: 80,
            child_ip: child_ip.into(),
        }
    }

    fn option(s: PortSpec, ipv6: bool) -> Result<String, String> {
        pesto_option(&s, ipv6)
            .map(|(o, v)| format!("-{o} {v}"))
            .map_err(|e| e.to_string())
    }

    /// RootlessKit's createArgs, case by case.
    #[test]
    fn specs_become_what_rootlesskit_passes_to_pesto() {
        let ok = |s: &str| Ok(s.to_string());
        assert_eq!(
            option(spec("tcp", "", 8080, ""), false),
            ok("-t 0.0.0.0/8080:80")
        );
        assert_eq!(
            option(spec("tcp4", "", 8080, ""), false),
            ok("-t 0.0.0.0/8080:80")
        );
        assert_eq!(
            option(spec("udp4", "127.0.0.1", 53, ""), false),
            ok("-u 127.0.0.1/53:80")
        );
        assert_eq!(
            option(spec("tcp6", "", 8080, ""), true),
            ok("-t ::/8080:80")
        );
        assert_eq!(
            option(spec("udp6", "::1", 8080, ""), true),
            ok("-u ::1/8080:80")
        );
        assert_eq!(
            option(spec("tcp", "::1", 8080, ""), true),
            ok("-t ::1/8080:80")
        );
        // Go's String() of a mapped address is the IPv4 one, and it counts as IPv4.
        assert_eq!(
            option(spec("tcp4", "::ffff:127.0.0.1", 8080, ""), false),
            ok("-t 127.0.0.1/8080:80")
        );
        let e = |s: &str| Err(s.to_string());
        assert_eq!(
            option(spec("tcp6", "", 8080, ""), false),
            e("IPv6 port forwarding (proto \"tcp6\", parent IP \"::\") requires --ipv6")
        );
        assert_eq!(
            option(spec("tcp", "::1", 8080, ""), false),
            e("IPv6 port forwarding (proto \"tcp\", parent IP \"::1\") requires --ipv6")
        );
        assert_eq!(
            option(spec("tcp4", "::1", 8080, ""), true),
            e("unsupported IP: ::1")
        );
        assert_eq!(
            option(spec("udp6", "0.0.0.0", 8080, ""), false),
            e("unsupported IP: 0.0.0.0")
        );
        assert_eq!(
            option(spec("sctp", "", 1, ""), false),
            e("unsupported protocol: sctp")
        );
    }

    /// An in-process pasta stand-in: nsnet_api's server over tables that `refuse` can make
    /// it keep (as nsnet's pasta does when it cannot listen on a port).
    struct Tables {
        tables: Vec<PifTable>,
        refuse: Arc<Mutex<bool>>,
    }

    impl Backend for Tables {
        fn tables(&self) -> Vec<PifTable> {
            self.tables.clone()
        }
        fn replace(&mut self, new: Vec<PifTable>) -> Result<(), String> {
            if *self.refuse.lock().unwrap() {
                return Err("refused".into());
            }
            self.tables = new;
            Ok(())
        }
    }

    fn serve(dir: &std::path::Path) -> (PathBuf, Arc<Mutex<bool>>) {
        let path = dir.join("pasta.sock");
        let server = Server::bind(&path).unwrap();
        let refuse = Arc::new(Mutex::new(false));
        let mut backend = Tables {
            tables: [(PIF_HOST, "HOST"), (PIF_SPLICE, "SPLICE")]
                .into_iter()
                .map(|(pif, name)| PifTable {
                    pif,
                    name: name.into(),
                    table: Table::new(CAP_IPV4 | CAP_IPV6 | CAP_TCP | CAP_UDP),
                })
                .collect(),
            refuse: refuse.clone(),
        };
        std::thread::spawn(move || server.serve(&mut backend));
        (path, refuse)
    }

    /// The HOST table as pesto shows it.
    fn host_rules(path: &std::path::Path) -> Vec<String> {
        let c = Client::connect(path).unwrap();
        let rules = c.tables[0]
            .table
            .rules
            .iter()
            .map(|r| r.to_string())
            .collect();
        c.close();
        rules
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ports_become_rules_of_the_inbound_table() {
        let dir = tempfile::tempdir().unwrap();
        let (path, refuse) = serve(dir.path());
        let d = PestoPorts::new(path.clone(), Ipv4Addr::new(10, 0, 2, 100), false);
        assert_eq!(d.protos(), PROTOS);
        let a = d.add(spec("tcp4", "0.0.0.0", 8080, "")).await.unwrap();
        let b = d.add(spec("udp", "", 5353, "10.0.2.100")).await.unwrap();
        assert_eq!((a.id, b.id), (1, 2), "ids from 1");
        assert_eq!(b.spec.parent_ip, "", "the status keeps the spec as given");
        assert_eq!(
            host_rules(&path),
            ["TCP [0.0.0.0]:8080  =>  80 ", "UDP [0.0.0.0]:5353  =>  80 "]
        );
        assert_eq!(d.list(), [a.clone(), b.clone()]);
        let err = |r: Result<PortStatus, PortError>| r.unwrap_err().to_string();
        assert_eq!(
            err(d.add(spec("tcp", "", 8081, "127.0.0.1")).await),
            "unsupported ChildIP \"127.0.0.1\": the pesto port driver only supports the namespace address \"10.0.2.100\""
        );
        assert_eq!(
            err(d.add(spec("tcp4", "0.0.0.0", 8080, "")).await),
            "conflict with ID 1"
        );
        assert_eq!(
            err(d.add(spec("tcp4", "", 0, "")).await),
            "invalid ParentPort: 0"
        );
        assert_eq!(
            err(d.add(spec("tcp6", "::", 8082, "")).await),
            "IPv6 port forwarding (proto \"tcp6\", parent IP \"::\") requires --ipv6"
        );
        // Another proto on the same rule is pasta's conflict, in pesto's words.
        let e = err(d.add(spec("tcp", "0.0.0.0", 8080, "")).await);
        assert!(
            e.starts_with("pesto failed: Unable to add rule TCP [0.0.0.0]:8080  =>  80 : Forwarding configuration conflict: "),
            "{e}"
        );
        // A pasta that keeps its old table: no id, nothing listed.
        *refuse.lock().unwrap() = true;
        assert_eq!(
            err(d.add(spec("tcp4", "", 8083, "")).await),
            "pesto failed: pasta kept its previous rules instead of adding --tcp-ports=0.0.0.0/8083:80 (can it listen on that port?)"
        );
        assert_eq!(
            d.remove(a.id).await.unwrap_err().to_string(),
            "pesto failed: pasta kept its previous rules instead of deleting --tcp-ports=0.0.0.0/8080:80"
        );
        assert_eq!(d.list().len(), 2, "a failed removal keeps the port");
        *refuse.lock().unwrap() = false;
        d.remove(a.id).await.unwrap();
        assert_eq!(host_rules(&path), ["UDP [0.0.0.0]:5353  =>  80 "]);
        assert_eq!(
            d.remove(a.id).await.unwrap_err().to_string(),
            "invalid ID: 1"
        );
        let c = d.add(spec("tcp4", "0.0.0.0", 8080, "")).await.unwrap();
        assert_eq!(c.id, 3, "ids are not reused");
        d.remove(b.id).await.unwrap();
        d.remove(c.id).await.unwrap();
        assert!(host_rules(&path).is_empty() && d.list().is_empty());
    }

    /// Concurrent adds each keep their rule: the driver serialises the read-modify-write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_adds_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = serve(dir.path());
        let d = Arc::new(PestoPorts::new(
            path.clone(),
            Ipv4Addr::new(10, 0, 2, 100),
            true,
        ));
        assert_eq!(d.protos(), PROTOS_IPV6);
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let d = d.clone();
                tokio::spawn(async move { d.add(spec("tcp6", "::1", 9000 + n, "")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(host_rules(&path).len(), 8);
        assert_eq!(d.list().len(), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_pasta_is_pestos_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = PestoPorts::new(
            dir.path().join("none.sock"),
            Ipv4Addr::new(10, 0, 2, 100),
            false,
        );
        let e = d
            .add(spec("tcp", "", 8080, ""))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pesto failed: Failed to connect to "), "{e}");
        assert!(d.list().is_empty());
    }
}
