//! The parent⇄child channel: one enum per direction, each message a little-endian `u32`
//! length followed by that many bytes of JSON, capped so that a confused peer cannot make
//! the other side allocate without bound (RootlessKit's `lowlevelmsgutil` does the same).

use std::io::{Read, Write};

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

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
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
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), ProtocolError> {
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
pub fn recv<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, ProtocolError> {
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

#[cfg(test)]
mod tests {
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
}
