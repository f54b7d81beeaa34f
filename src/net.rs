//! Where the gRPC server listens and where clients dial: TCP (`HOST:PORT`) or a Unix socket
//! (`unix:/path`, gRPC's own name for one, which grpc-go and the C-core libraries dial as is).
//!
//! A Unix socket is for a sidecar whose caller shares its host or pod (a shared `emptyDir`):
//! no TCP stack on either side, which costs less CPU per call than loopback TCP (BENCHMARKS.md).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use futures::Stream;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};

/// The prefix of a Unix socket address or target.
pub const UNIX_PREFIX: &str = "unix:";

/// Who may connect to the socket: its owner and its group (with a pod's `fsGroup`, the group
/// of the shared volume), nobody else.
const SOCKET_MODE: u32 = 0o660;

/// A listen address: TCP, or the path of a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl ListenAddr {
    /// Reachable from this machine (or pod) only: a loopback address or a Unix socket.
    pub fn is_local(&self) -> bool {
        match self {
            ListenAddr::Tcp(addr) => addr.ip().is_loopback(),
            ListenAddr::Unix(_) => true,
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        ListenAddr::Tcp(addr)
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    /// `HOST:PORT` (an IP address and a port) or `unix:/path` (also `unix:///path`).
    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = unix_path(text) {
            return Ok(ListenAddr::Unix(path));
        }
        text.parse().map(ListenAddr::Tcp).map_err(|_| {
            format!("{text:?} is not an address: use IP:PORT (e.g. 127.0.0.1:50051) or unix:/PATH")
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

/// The socket path of a `unix:` address or target (`unix:/p`, `unix:///p` and `unix:p`);
/// `None` for anything else.
pub fn unix_path(text: &str) -> Option<PathBuf> {
    let rest = text.strip_prefix(UNIX_PREFIX)?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// The endpoint for a target: an `http(s)://` URL as is; for a `unix:` target, a placeholder
/// URL (its authority is only the `:authority` header: [`connect`] dials the socket).
pub fn endpoint(target: &str) -> Result<Endpoint, tonic::transport::Error> {
    match unix_path(target) {
        Some(_) => Endpoint::from_shared("http://localhost".to_string()),
        None => Endpoint::from_shared(target.to_string()),
    }
}

/// Connects `endpoint` (from [`endpoint`]) to `target`: over TCP, or over the Unix socket of a
/// `unix:` target.
pub async fn connect(endpoint: Endpoint, target: &str) -> Result<Channel, tonic::transport::Error> {
    let Some(path) = unix_path(target) else {
        return endpoint.connect().await;
    };
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
}

/// Binds a Unix socket at `path`, readable and writable by its owner and group only. A socket
/// file left by a server that is gone (connecting to it is refused) is replaced; a live one, one
/// we may not connect to, or a file that is not a socket is an error, never removed.
pub async fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        match UnixStream::connect(path).await {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)?,
            Err(e) => return Err(e),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another server is listening on {}", path.display()),
                ))
            }
        }
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    Ok(listener)
}

/// The connections a Unix listener accepts, as tonic's `serve_with_incoming` takes them.
pub fn unix_incoming(listener: UnixListener) -> impl Stream<Item = io::Result<UnixStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_and_print_back() {
        let tcp: ListenAddr = "127.0.0.1:50051".parse().unwrap();
        assert_eq!(
            tcp,
            ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 50051)))
        );
        assert_eq!(tcp.to_string(), "127.0.0.1:50051");
        assert!(tcp.is_local());
        assert!(!"0.0.0.0:1".parse::<ListenAddr>().unwrap().is_local());
        for text in ["unix:/run/creditd.sock", "unix:///run/creditd.sock"] {
            let unix: ListenAddr = text.parse().unwrap();
            assert_eq!(unix, ListenAddr::Unix(PathBuf::from("/run/creditd.sock")));
            assert_eq!(unix.to_string(), "unix:/run/creditd.sock");
            assert!(unix.is_local());
        }
        assert_eq!(
            "unix:creditd.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix(PathBuf::from("creditd.sock"))
        );
        for bad in ["unix:", "unix://", "localhost:50051", "50051", ""] {
            let err = bad.parse::<ListenAddr>().unwrap_err();
            assert!(err.contains("unix:/PATH"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn only_unix_targets_have_a_path() {
        assert_eq!(unix_path("unix:/a/b"), Some(PathBuf::from("/a/b")));
        assert_eq!(unix_path("http://127.0.0.1:1"), None);
        assert_eq!(unix_path("/a/b"), None);
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_live_one_or_a_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let live = bind_unix(&path).await.expect("binds");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let err = bind_unix(&path).await.expect_err("someone listens");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(live);
        assert!(path.exists(), "a dropped listener leaves its file");
        bind_unix(&path).await.expect("the stale file is replaced");

        let plain = dir.path().join("notes.txt");
        std::fs::write(&plain, "keep me").unwrap();
        let err = bind_unix(&plain).await.expect_err("not a socket");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");
    }
}
