//! The parent⇄child channel (the handshake drawn in docs/launcher.md): [`ParentSide`] and
//! [`ChildSide`] speak it through methods named for each step, and each step accepts only
//! the reply that comes next, so a reply out of order is
//! [`ProtocolError::Unexpected`], naming what was expected and what came (youki's
//! `process/channel.rs` holds its handshake the same way).
//!
//! On the wire: one enum per direction, each message a little-endian `u32` length followed
//! by that many bytes of JSON, capped so that a confused peer cannot make the other side
//! allocate without bound (RootlessKit's `lowlevelmsgutil` does the same). The two ends are
//! a pair of pipes in the launcher; any pair of descriptors works (the tests use a
//! socketpair).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::config::ChildConfig;

/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Parent → child.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ParentMsg {
    /// Everything the child needs to build its namespaces and run the command.
    Start(Box<ChildConfig>),
    /// The network driver is set up; the child writes resolv.conf and hosts.
    NetworkReady { dns: Vec<String> },
    /// `child_pid` is written and the API serves: the child starts the command.
    Go,
}

/// Child → parent.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum ChildMsg {
    /// Namespaces and mounts are set up; the network driver may configure the netns.
    NamespacesReady { warnings: Vec<String> },
    /// Everything is set up; the command is about to start.
    Ready { warnings: Vec<String> },
    /// Setup failed; the child exits after sending this.
    Failed { message: String },
}

impl ParentMsg {
    /// The message's name, for [`ProtocolError::Unexpected`].
    pub fn name(&self) -> &'static str {
        match self {
            ParentMsg::Start(_) => "Start",
            ParentMsg::NetworkReady { .. } => "NetworkReady",
            ParentMsg::Go => "Go",
        }
    }
}

impl ChildMsg {
    /// The message's name, for [`ProtocolError::Unexpected`].
    pub fn name(&self) -> &'static str {
        match self {
            ChildMsg::NamespacesReady { .. } => "NamespacesReady",
            ChildMsg::Ready { .. } => "Ready",
            ChildMsg::Failed { .. } => "Failed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer sent a message out of order.
    #[error("expected {expected}, received {received}")]
    Unexpected {
        expected: &'static str,
        received: &'static str,
    },
    /// The child reported a setup failure instead of the next step; the message is its.
    #[error("{0}")]
    ChildFailed(String),
    #[error("peer closed the channel")]
    Closed,
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes one framed message.
fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), ProtocolError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_MESSAGE {
        return Err(ProtocolError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// Reads one framed message.
fn recv<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, ProtocolError> {
    let mut len = [0u8; 4];
    if let Err(e) = r.read_exact(&mut len) {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Closed
        } else {
            e.into()
        });
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(ProtocolError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Closed
        } else {
            e.into()
        }
    })?;
    Ok(serde_json::from_slice(&body)?)
}

/// The parent's end: each method sends one step of the handshake and, where the child
/// answers it, waits for that answer.
pub struct ParentSide {
    to_child: File,
    from_child: File,
}

impl ParentSide {
    pub fn new(to_child: OwnedFd, from_child: OwnedFd) -> Self {
        ParentSide {
            to_child: to_child.into(),
            from_child: from_child.into(),
        }
    }

    /// Sends the child its configuration; returns the child's warnings once its namespaces
    /// and mounts are set up.
    pub fn start(&mut self, config: ChildConfig) -> Result<Vec<String>, ProtocolError> {
        send(&mut self.to_child, &ParentMsg::Start(Box::new(config)))?;
        match self.reply()? {
            ChildMsg::NamespacesReady { warnings } => Ok(warnings),
            other => Err(unexpected("NamespacesReady", other.name())),
        }
    }

    /// Tells the child the network is up (with its DNS servers); returns the child's
    /// warnings once it has written resolv.conf and hosts and is ready to run the command.
    pub fn network_ready(&mut self, dns: Vec<String>) -> Result<Vec<String>, ProtocolError> {
        send(&mut self.to_child, &ParentMsg::NetworkReady { dns })?;
        match self.reply()? {
            ChildMsg::Ready { warnings } => Ok(warnings),
            other => Err(unexpected("Ready", other.name())),
        }
    }

    /// Lets the child start the command, and closes the channel (nothing follows).
    pub fn go(mut self) -> Result<(), ProtocolError> {
        send(&mut self.to_child, &ParentMsg::Go)
    }

    fn reply(&mut self) -> Result<ChildMsg, ProtocolError> {
        match recv(&mut self.from_child)? {
            ChildMsg::Failed { message } => Err(ProtocolError::ChildFailed(message)),
            m => Ok(m),
        }
    }
}

/// The child's end: it receives its configuration, then reports each step and waits for
/// the parent's next one.
pub struct ChildSide {
    from_parent: File,
    to_parent: File,
}

impl ChildSide {
    pub fn new(from_parent: OwnedFd, to_parent: OwnedFd) -> Self {
        ChildSide {
            from_parent: from_parent.into(),
            to_parent: to_parent.into(),
        }
    }

    /// Waits for the configuration (the parent's first message).
    pub fn start(&mut self) -> Result<ChildConfig, ProtocolError> {
        match recv(&mut self.from_parent)? {
            ParentMsg::Start(config) => Ok(*config),
            other => Err(unexpected("Start", other.name())),
        }
    }

    /// Reports the namespaces and mounts set up; returns the DNS servers once the parent's
    /// network driver is up.
    pub fn namespaces_ready(
        &mut self,
        warnings: Vec<String>,
    ) -> Result<Vec<String>, ProtocolError> {
        send(&mut self.to_parent, &ChildMsg::NamespacesReady { warnings })?;
        match recv(&mut self.from_parent)? {
            ParentMsg::NetworkReady { dns } => Ok(dns),
            other => Err(unexpected("NetworkReady", other.name())),
        }
    }

    /// Reports everything set up; returns once the parent says go (`child_pid` is written
    /// and the API serves), and closes the channel.
    pub fn ready(mut self, warnings: Vec<String>) -> Result<(), ProtocolError> {
        send(&mut self.to_parent, &ChildMsg::Ready { warnings })?;
        match recv(&mut self.from_parent)? {
            ParentMsg::Go => Ok(()),
            other => Err(unexpected("Go", other.name())),
        }
    }

    /// Reports a setup failure; the child exits after this, so a failure to send it is only
    /// seen by the parent as the channel closing.
    pub fn failed(mut self, message: String) {
        let _ = send(&mut self.to_parent, &ChildMsg::Failed { message });
    }
}

fn unexpected(expected: &'static str, received: &'static str) -> ProtocolError {
    ProtocolError::Unexpected { expected, received }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let m = ChildMsg::Failed {
            message: "no".into(),
        };
        send(&mut buf, &m).unwrap();
        assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_le_bytes());
        let back: ChildMsg = recv(&mut buf.as_slice()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn refuses_oversized_truncated_and_garbage() {
        let big = (MAX_MESSAGE as u32 + 1).to_le_bytes();
        assert!(matches!(
            recv::<ChildMsg>(&mut big.as_slice()),
            Err(ProtocolError::TooLarge(_))
        ));
        assert!(matches!(
            recv::<ChildMsg>(&mut [5u8, 0, 0, 0, b'{'].as_slice()),
            Err(ProtocolError::Closed)
        ));
        assert!(matches!(
            recv::<ChildMsg>(&mut [].as_slice()),
            Err(ProtocolError::Closed)
        ));
        assert!(matches!(
            recv::<ChildMsg>(&mut [2u8, 0, 0, 0, b'{', b'}'].as_slice()),
            Err(ProtocolError::Json(_))
        ));
    }

    fn socketpair() -> (ParentSide, ChildSide, UnixStream, UnixStream) {
        let (p, c) = UnixStream::pair().unwrap();
        let (p_raw, c_raw) = (p.try_clone().unwrap(), c.try_clone().unwrap());
        let parent = ParentSide::new(p.try_clone().unwrap().into(), p.into());
        let child = ChildSide::new(c.try_clone().unwrap().into(), c.into());
        (parent, child, p_raw, c_raw)
    }

    fn config() -> ChildConfig {
        crate::LaunchPlan::from_raw(
            crate::RawOptions {
                net: Some("none".into()),
                command: vec!["true".into()],
                ..Default::default()
            },
            crate::Personality::Nsnet,
        )
        .unwrap()
        .child_config("/s".into())
    }

    #[test]
    fn handshake_in_order() {
        let (mut parent, mut child, _p, _c) = socketpair();
        let child = std::thread::spawn(move || {
            let cfg = child.start().unwrap();
            let dns = child.namespaces_ready(vec!["w1".into()]).unwrap();
            child.ready(vec!["w2".into()]).unwrap();
            (cfg, dns)
        });
        assert_eq!(parent.start(config()).unwrap(), ["w1"]);
        assert_eq!(
            parent.network_ready(vec!["10.0.2.3".into()]).unwrap(),
            ["w2"]
        );
        parent.go().unwrap();
        let (cfg, dns) = child.join().unwrap();
        assert_eq!(cfg, config());
        assert_eq!(dns, ["10.0.2.3"]);
    }

    #[test]
    fn parent_refuses_a_reply_out_of_order() {
        let (mut parent, _child, _p, mut c) = socketpair();
        // The child skips NamespacesReady and says Ready at once.
        send(&mut c, &ChildMsg::Ready { warnings: vec![] }).unwrap();
        let e = parent.start(config()).unwrap_err();
        assert!(
            matches!(
                e,
                ProtocolError::Unexpected {
                    expected: "NamespacesReady",
                    received: "Ready"
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "expected NamespacesReady, received Ready");
        // The start message did go out first.
        assert!(matches!(recv::<ParentMsg>(&mut c), Ok(ParentMsg::Start(_))));

        // A repeated NamespacesReady where Ready is due is refused as well.
        send(&mut c, &ChildMsg::NamespacesReady { warnings: vec![] }).unwrap();
        let e = parent.network_ready(vec![]).unwrap_err();
        assert_eq!(e.to_string(), "expected Ready, received NamespacesReady");
    }

    #[test]
    fn child_refuses_a_message_out_of_order() {
        let (_parent, mut child, mut p, _c) = socketpair();
        send(&mut p, &ParentMsg::Go).unwrap();
        assert_eq!(
            child.start().unwrap_err().to_string(),
            "expected Start, received Go"
        );
        send(&mut p, &ParentMsg::Go).unwrap();
        assert_eq!(
            child.namespaces_ready(vec![]).unwrap_err().to_string(),
            "expected NetworkReady, received Go"
        );
        assert!(matches!(
            recv::<ChildMsg>(&mut p),
            Ok(ChildMsg::NamespacesReady { .. })
        ));
        send(&mut p, &ParentMsg::NetworkReady { dns: vec![] }).unwrap();
        assert_eq!(
            child.ready(vec![]).unwrap_err().to_string(),
            "expected Go, received NetworkReady"
        );
    }

    #[test]
    fn child_failure_and_close_are_told_apart() {
        let (mut parent, child, _p, c) = socketpair();
        child.failed("cannot mount /proc".into());
        assert!(matches!(
            parent.start(config()),
            Err(ProtocolError::ChildFailed(m)) if m == "cannot mount /proc"
        ));
        // The child's end stops sending (as when it dies): the parent's wait ends in Closed.
        c.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(matches!(
            parent.network_ready(vec![]),
            Err(ProtocolError::Closed)
        ));
    }
}
