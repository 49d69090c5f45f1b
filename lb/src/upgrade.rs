//! Zero-downtime binary upgrade by listening-socket handover.
//!
//! The running (old) process serves a unix socket (`--upgrade-socket`).  A
//! new process started with `--upgrade-from PATH`:
//!
//! 1. connects; the old process sends one message: a JSON object naming the
//!    configured binds of its frontends and of its admin API, and, as
//!    `SCM_RIGHTS`, a duplicate of each of those listening sockets (the same
//!    kernel socket, so its accept queue is shared and no client is ever
//!    refused, nor an admin request);
//! 2. starts with those sockets where its own configuration has the same
//!    bind (others it binds itself), runs the first check of every server
//!    while the old process keeps serving (at most [`FIRST_CHECKS_LIMIT`]),
//!    then accepts and writes `ready\n`;
//! 3. the old process then stops accepting on every listener, the admin API
//!    included, closes its upgrade socket, serves its established sessions
//!    until they end (or until `global.hard_stop_after`), and exits.
//!
//! The new process only answers `/readyz` once it has checked its servers,
//! so warren-vip (which tracks `/readyz`) sees the old process's verdict up
//! to `ready` and the new one's after, never a start-up guess.
//!
//! If the new process dies or fails before `ready`, the old one logs that
//! the upgrade was aborted and keeps serving as if nothing happened.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// How long the old process waits for the new one to say `ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the new process waits for the first check of every server
/// before it serves anyway (unchecked servers count as UP, HAProxy's
/// default); well inside [`READY_TIMEOUT`].
pub const FIRST_CHECKS_LIMIT: Duration = Duration::from_secs(20);
/// At most this many listeners are handed over.
const MAX_FDS: usize = 64;

/// Listening sockets keyed by the bind written in the configuration that
/// opened them (port 0 stays 0): what a handover carries.
pub struct Sockets<S> {
    pub frontends: Vec<(SocketAddr, S)>,
    pub admin: Option<(SocketAddr, S)>,
}

impl<S> Default for Sockets<S> {
    fn default() -> Self {
        Sockets {
            frontends: Vec::new(),
            admin: None,
        }
    }
}

/// What the new process received: listeners it may adopt.
pub type Inherited = Sockets<std::net::TcpListener>;

/// The old process's side of one handover: send the sockets, wait for
/// `ready`.  Blocking; run it off the async runtime.  Ok(true) when the
/// new process took over.
pub fn hand_over(stream: UnixStream, sockets: &Sockets<OwnedFd>) -> anyhow::Result<bool> {
    let all: Vec<&(SocketAddr, OwnedFd)> = sockets.frontends.iter().chain(&sockets.admin).collect();
    if all.len() > MAX_FDS {
        bail!(
            "{} listeners: at most {MAX_FDS} can be handed over",
            all.len()
        );
    }
    let binds: Vec<String> = sockets
        .frontends
        .iter()
        .map(|(b, _)| b.to_string())
        .collect();
    let admin = sockets.admin.as_ref().map(|(b, _)| b.to_string());
    let payload = serde_json::to_vec(&serde_json::json!({ "binds": binds, "admin": admin }))?;
    // The admin socket, if any, comes last.
    let fds: Vec<RawFd> = all.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&payload)],
        if fds.is_empty() { &[] } else { &cmsgs },
        MsgFlags::empty(),
        None,
    )
    .context("sending the listening sockets")?;
    stream.set_read_timeout(Some(READY_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line.trim() == "ready")
}

/// The new process's side: the sockets received, by configured bind, and
/// the connection on which to say `ready`.
pub struct Handover {
    pub sockets: Inherited,
    stream: UnixStream,
}

impl Handover {
    pub fn receive(path: &Path) -> anyhow::Result<Handover> {
        let stream = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot reach the running warren-lb at {} (is it started with --upgrade-socket?)",
                path.display()
            )
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (bytes, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .context("receiving the listening sockets")?;
            let mut fds = Vec::new();
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(r) = c {
                    // SAFETY: SCM_RIGHTS gives this process new descriptors
                    // that nothing else owns.
                    fds.extend(r.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
            (msg.bytes, fds)
        };
        let message: serde_json::Value =
            serde_json::from_slice(&buf[..bytes]).context("the handover message")?;
        let parse = |b: &serde_json::Value| -> anyhow::Result<SocketAddr> {
            let text = b.as_str().context("a bind that is not a string")?;
            text.parse().with_context(|| {
                format!("bind {text:?}: expected an address such as 127.0.0.1:5672")
            })
        };
        let binds: Vec<SocketAddr> = message["binds"]
            .as_array()
            .context("the handover message has no binds")?
            .iter()
            .map(parse)
            .collect::<Result<_, _>>()
            .context("a frontend bind in the handover message")?;
        let admin = match &message["admin"] {
            serde_json::Value::Null => None,
            b => Some(parse(b).context("the admin bind in the handover message")?),
        };
        let expected = binds.len() + usize::from(admin.is_some());
        if expected != fds.len() {
            bail!(
                "{} frontend bind(s){} but {} socket(s) received",
                binds.len(),
                if admin.is_some() {
                    " and an admin bind"
                } else {
                    ""
                },
                fds.len()
            );
        }
        let mut fds = fds.into_iter().map(std::net::TcpListener::from);
        let frontends = binds.into_iter().zip(fds.by_ref()).collect();
        let admin = admin.zip(fds.next());
        Ok(Handover {
            sockets: Sockets { frontends, admin },
            stream,
        })
    }

    /// Tells the old process to stop accepting.
    pub fn ready(mut self) -> std::io::Result<()> {
        self.stream.write_all(b"ready\n")?;
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn listener() -> (SocketAddr, OwnedFd) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (l.local_addr().unwrap(), OwnedFd::from(l))
    }

    /// The old process's side, in a thread: `send` runs on the accepted
    /// connection.
    fn old_process<T: Send + 'static>(
        path: &Path,
        send: impl FnOnce(UnixStream) -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let server = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || send(server.accept().unwrap().0))
    }

    #[test]
    fn a_handover_carries_the_frontends_and_the_admin_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.sock");
        let (frontend, admin) = (listener(), listener());
        let (frontend_addr, admin_addr) = (frontend.0, admin.0);
        let configured: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let old = old_process(&path, move |stream| {
            let sockets = Sockets {
                frontends: vec![(configured, frontend.1)],
                admin: Some((admin_addr, admin.1)),
            };
            hand_over(stream, &sockets).unwrap()
        });
        let handover = Handover::receive(&path).unwrap();
        let Sockets { frontends, admin } = &handover.sockets;
        assert_eq!(frontends.len(), 1);
        assert_eq!(frontends[0].0, configured, "keyed by the configured bind");
        assert_eq!(frontends[0].1.local_addr().unwrap(), frontend_addr);
        let (bind, socket) = admin.as_ref().expect("the admin socket");
        assert_eq!(*bind, admin_addr);
        assert_eq!(socket.local_addr().unwrap(), admin_addr);
        handover.ready().unwrap();
        assert!(old.join().unwrap(), "the old process hears `ready`");
    }

    /// What the new process says when the old one sends `payload` with
    /// `sockets` listening sockets and `receive` refuses the handover.
    fn refusal(payload: &'static [u8], sockets: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.sock");
        let old = old_process(&path, move |stream| {
            let held: Vec<OwnedFd> = (0..sockets).map(|_| listener().1).collect();
            let fds: Vec<RawFd> = held.iter().map(|fd| fd.as_raw_fd()).collect();
            let cmsgs = [ControlMessage::ScmRights(&fds)];
            sendmsg::<()>(
                stream.as_raw_fd(),
                &[IoSlice::new(payload)],
                if fds.is_empty() { &[] } else { &cmsgs },
                MsgFlags::empty(),
                None,
            )
            .unwrap();
        });
        let err = Handover::receive(&path).err().expect("refused");
        old.join().unwrap();
        format!("{err:#}")
    }

    #[test]
    fn a_message_that_does_not_match_its_sockets_is_a_clear_error() {
        let payload = br#"{"binds": ["127.0.0.1:5672"], "admin": "127.0.0.1:8404"}"#;
        assert_eq!(
            refusal(payload, 1),
            "1 frontend bind(s) and an admin bind but 1 socket(s) received"
        );
    }

    #[test]
    fn a_bind_that_is_not_an_address_is_named() {
        let payload = br#"{"binds": [], "admin": "localhost"}"#;
        assert_eq!(
            refusal(payload, 0),
            "the admin bind in the handover message: bind \"localhost\": expected an address such as 127.0.0.1:5672: invalid socket address syntax"
        );
    }
}
