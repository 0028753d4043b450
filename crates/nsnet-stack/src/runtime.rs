//! The stack's thread: one epoll loop over the tap, the host sockets and a stop eventfd.
//!
//! Each wake-up reads up to [`TAP_BATCH`] frames from the tap before looking at sockets, so
//! a burst of guest segments costs one ACK per connection ([`Stack::flush`]) rather than one
//! per segment. The epoll timeout follows the timers: 20 ms while flows exist (the TCP timer
//! tick), a second otherwise. Signals are left to the caller: a thread inherits its
//! creator's signal mask, and nsnet's parent blocks them all before spawning.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::{Config, Error, Forward, GuestTx, Stack, sys};

/// A request to the stack's thread, answered on its own channel.
enum Cmd {
    Add(Forward, mpsc::SyncSender<io::Result<()>>),
    Remove(u32, mpsc::SyncSender<bool>),
}

/// Adds and removes host forwards of a running stack from any thread; each call returns
/// once the stack's thread has applied it (a removed port is closed when `remove` returns).
#[derive(Clone)]
pub struct Forwards {
    tx: mpsc::Sender<Cmd>,
    wake: Arc<OwnedFd>,
}

impl Forwards {
    fn call<T>(&self, make: impl FnOnce(mpsc::SyncSender<T>) -> Cmd) -> Option<T> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        self.tx.send(make(rtx)).ok()?;
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        rrx.recv().ok()
    }

    /// Starts forwarding `fwd` (see [`Stack::add_forward`]).
    pub fn add(&self, fwd: Forward) -> io::Result<()> {
        self.call(|r| Cmd::Add(fwd, r))
            .unwrap_or_else(|| Err(io::Error::other("the stack has stopped")))
    }

    /// Stops forward `id`; false if there is no such forward (or the stack has stopped).
    pub fn remove(&self, id: u32) -> bool {
        self.call(|r| Cmd::Remove(id, r)).unwrap_or(false)
    }
}

const TAP_TOKEN: u64 = 0;
const STOP_TOKEN: u64 = u64::MAX;
const CMD_TOKEN: u64 = u64::MAX - 1;
const TAP_BATCH: usize = 256;
const FRAME_MAX: usize = crate::wire::VNET_HDR_LEN + crate::wire::ETH_HDR_LEN + 65535 + 4;

/// Frames to the guest: one `writev` per frame on the tap fd.
pub struct TapTx {
    fd: RawFd,
    /// Frames the kernel refused (a full tap queue drops; TCP retransmits).
    pub errors: u64,
}

impl TapTx {
    /// `fd` must stay open as long as this sender is used (the runtime owns both).
    pub fn new(fd: RawFd) -> TapTx {
        TapTx { fd, errors: 0 }
    }
}

impl GuestTx for TapTx {
    fn send(&mut self, parts: &[&[u8]]) {
        if sys::writev(self.fd, parts).is_err() {
            self.errors += 1;
        }
    }
}

/// A running stack; dropping it stops the thread and closes every socket and the tap.
pub struct Running {
    stop: OwnedFd,
    thread: Option<JoinHandle<Result<(), Error>>>,
    forwards: Forwards,
}

impl Running {
    /// The handle that adds and removes host forwards.
    pub fn forwards(&self) -> Forwards {
        self.forwards.clone()
    }

    /// Stops the stack and reports how its loop ended.
    pub fn stop(mut self) -> Result<(), Error> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), Error> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), 8) };
        match self.thread.take() {
            Some(t) => t.join().unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// Whether the loop is still running (it ends only on stop or a tap error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Raises the soft limit on open files to the hard one: every guest connection and flow is a
/// host socket, and the usual soft limit of 1024 would cap the guest well below the stack's
/// own limits (131,072 TCP connections, 4096 UDP flows). Beyond the limit a guest SYN gets a
/// RST, never a crash.
fn raise_nofile_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: l is valid for writing and reading.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Runs the stack for `tap` (non-blocking, `IFF_VNET_HDR`) on a thread of its own.
pub fn spawn(tap: OwnedFd, cfg: Config) -> Result<Running, Error> {
    raise_nofile_limit();
    // SAFETY: plain syscall; checked.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(Error::Epoll(io::Error::last_os_error()));
    }
    // SAFETY: fresh fd.
    let stop = unsafe { OwnedFd::from_raw_fd(efd) };
    // SAFETY: plain syscall; checked.
    let cfd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if cfd < 0 {
        return Err(Error::Epoll(io::Error::last_os_error()));
    }
    // SAFETY: fresh fd.
    let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(cfd) });
    let (ctx, crx) = mpsc::channel();
    let stack = Stack::new(cfg, Box::new(TapTx::new(tap.as_raw_fd()))).map_err(Error::Epoll)?;
    let ep = stack.epoll_fd();
    sys::epoll_add(ep, tap.as_raw_fd(), libc::EPOLLIN as u32, TAP_TOKEN)
        .map_err(Error::RegisterTap)?;
    sys::epoll_add(ep, stop.as_raw_fd(), libc::EPOLLIN as u32, STOP_TOKEN)
        .map_err(Error::RegisterTap)?;
    sys::epoll_add(ep, wake.as_raw_fd(), libc::EPOLLIN as u32, CMD_TOKEN)
        .map_err(Error::RegisterTap)?;
    let wake_rx = wake.clone();
    let thread = std::thread::Builder::new()
        .name("nsnet-stack".into())
        .spawn(move || {
            // Before the first frame is read (see `crate::confine`).
            match crate::confine::confine_this_thread() {
                Ok(c) if c.landlock != landlock::RulesetStatus::FullyEnforced => tracing::warn!(
                    "the stack's thread runs without full Landlock confinement (the kernel's \
                     Landlock is older or off); its system-call filter is in place"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("the stack's thread runs unconfined: {e}"),
            }
            run(tap, stack, crx, wake_rx)
        })
        .map_err(Error::Thread)?;
    Ok(Running {
        stop,
        thread: Some(thread),
        forwards: Forwards { tx: ctx, wake },
    })
}

fn run(
    tap: OwnedFd,
    mut stack: Stack,
    cmds: mpsc::Receiver<Cmd>,
    wake: Arc<OwnedFd>,
) -> Result<(), Error> {
    let mut buf = vec![0u8; FRAME_MAX];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        let (t, u, i) = stack.flow_counts();
        let timeout = if t + u + i > 0 { 20 } else { 1000 };
        // SAFETY: events is a valid buffer of its length.
        let n = unsafe {
            libc::epoll_wait(
                stack.epoll_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Epoll(e));
        }
        let now = Instant::now();
        for ev in &events[..n as usize] {
            let (token, bits) = (ev.u64, ev.events);
            match token {
                STOP_TOKEN => return Ok(()),
                CMD_TOKEN => {
                    let mut b = [0u8; 8];
                    // SAFETY: reading 8 bytes from our eventfd into b.
                    unsafe { libc::read(wake.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
                    while let Ok(cmd) = cmds.try_recv() {
                        match cmd {
                            Cmd::Add(f, r) => drop(r.send(stack.add_forward(f))),
                            Cmd::Remove(id, r) => drop(r.send(stack.remove_forward(id))),
                        }
                    }
                }
                TAP_TOKEN => {
                    for _ in 0..TAP_BATCH {
                        // SAFETY: buf is valid for writing its length.
                        let r = unsafe {
                            libc::read(tap.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                        };
                        if r < 0 {
                            let e = io::Error::last_os_error();
                            match e.kind() {
                                io::ErrorKind::WouldBlock => break,
                                io::ErrorKind::Interrupted => continue,
                                _ => return Err(Error::ReadTap(e)),
                            }
                        }
                        if r == 0 {
                            // The tap went away with its namespace.
                            return Ok(());
                        }
                        stack.receive(&buf[..r as usize], now);
                    }
                }
                _ => stack.socket_ready(token, bits, now),
            }
        }
        stack.flush(now);
        stack.poll_timers(now);
    }
}
