//! A `creditd serve` process on free ports (or its gRPC on a Unix socket), against a given Redis
//! or the memory store. Waits for gRPC health to say SERVING, and is killed on Drop.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::credits_client::CreditsClient;
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::{free_port, WAIT};

pub struct CreditdServer {
    child: Option<Child>,
    /// The gRPC port (unused when the server listens on a Unix socket).
    pub grpc_port: u16,
    /// `http://127.0.0.1:PORT`, or `unix:/PATH` (see [`CreditdServer::start_on_unix_socket`]).
    target: String,
    pub http_port: u16,
    logs: TempDir,
}

impl CreditdServer {
    /// Starts `creditd serve` against `redis_url` (None = the memory store) with `extra` flags,
    /// and waits until gRPC health reports SERVING.
    pub async fn start(redis_url: Option<&str>, extra: &[&str]) -> Self {
        Self::start_listening(redis_url, extra, false).await
    }

    /// [`CreditdServer::start`] with the gRPC listener on a Unix socket in its own temp dir.
    pub async fn start_on_unix_socket(redis_url: Option<&str>, extra: &[&str]) -> Self {
        Self::start_listening(redis_url, extra, true).await
    }

    async fn start_listening(redis_url: Option<&str>, extra: &[&str], unix: bool) -> Self {
        // A free port can be taken between our probe and the server's bind: then the server
        // exits at once, and we try again on other ports.
        for _ in 0..3 {
            let server = Self::spawn_listening(redis_url, extra, unix);
            let start = Instant::now();
            while server.child_running() && start.elapsed() < WAIT {
                if server.health_status().await == Some(ServingStatus::Serving) {
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let logs = server.logs();
            if !logs.contains("cannot listen") {
                panic!("creditd did not become SERVING within {WAIT:?}\n{logs}");
            }
            eprintln!("creditd could not bind its ports, retrying:\n{logs}");
        }
        panic!("creditd could not bind free ports three times");
    }

    /// Starts `creditd serve` without waiting for readiness.
    pub fn spawn(redis_url: Option<&str>, extra: &[&str]) -> Self {
        Self::spawn_listening(redis_url, extra, false)
    }

    fn spawn_listening(redis_url: Option<&str>, extra: &[&str], unix: bool) -> Self {
        let logs = tempfile::Builder::new()
            .prefix("creditd-serve-")
            .tempdir()
            .expect("temp dir for creditd logs");
        let grpc_port = free_port();
        let http_port = free_port();
        let (listen, target) = if unix {
            let socket = format!("unix:{}", logs.path().join("grpc.sock").display());
            (socket.clone(), socket)
        } else {
            let addr = format!("127.0.0.1:{grpc_port}");
            (addr.clone(), format!("http://{addr}"))
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditd"));
        cmd.arg("serve")
            .args(["--listen", &listen])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")]);
        if let Some(url) = redis_url {
            cmd.args(["--redis-url", url]);
        }
        cmd.args(extra)
            .env_remove("CREDITD_REDIS_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(logs.path().join("stdout.log")).expect("log file"))
            .stderr(std::fs::File::create(logs.path().join("stderr.log")).expect("log file"));
        let child = cmd.spawn().expect("spawn creditd serve");
        CreditdServer {
            child: Some(child),
            grpc_port,
            target,
            http_port,
            logs,
        }
    }

    /// Where clients dial it: `http://127.0.0.1:PORT` or `unix:/PATH`.
    pub fn url(&self) -> String {
        self.target.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the server printed so far, for failure messages.
    pub fn logs(&self) -> String {
        let read = |name: &str| {
            let p: PathBuf = self.logs.path().join(name);
            std::fs::read_to_string(p).unwrap_or_default()
        };
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    pub async fn channel(&self) -> Channel {
        let endpoint = creditd::net::endpoint(&self.target)
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        creditd::net::connect(endpoint, &self.target)
            .await
            .unwrap_or_else(|e| panic!("connect to creditd: {e}\n{}", self.logs()))
    }

    pub async fn credits(&self) -> CreditsClient<Channel> {
        CreditsClient::new(self.channel().await)
    }

    pub async fn admin(&self) -> CreditAdminClient<Channel> {
        CreditAdminClient::new(self.channel().await)
    }

    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel().await)
    }

    /// The health of service "" now, or None when the server does not answer.
    pub async fn health_status(&self) -> Option<ServingStatus> {
        let endpoint = creditd::net::endpoint(&self.target)
            .ok()?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5));
        let channel = creditd::net::connect(endpoint, &self.target).await.ok()?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        ServingStatus::try_from(answer.into_inner().status).ok()
    }

    /// Waits until health reports `want` (deadline [`WAIT`]).
    pub async fn wait_health(&self, want: ServingStatus) {
        let start = Instant::now();
        loop {
            let status = self.health_status().await;
            if status == Some(want) {
                return;
            }
            assert!(
                self.child_running(),
                "creditd exited while waiting for {want:?}\n{}",
                self.logs()
            );
            assert!(
                start.elapsed() < WAIT,
                "creditd health is {status:?}, not {want:?}, after {WAIT:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_serving(&self) {
        self.wait_health(ServingStatus::Serving).await;
    }

    fn child_running(&self) -> bool {
        // `try_wait` needs `&mut`; ask the OS instead so that this works on `&self`.
        let Some(child) = self.child.as_ref() else {
            return false;
        };
        std::path::Path::new(&format!("/proc/{}", child.id())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
                .unwrap_or_default()
                .contains(") Z ")
    }

    /// Sends SIGTERM with the `kill` command.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit (deadline [`WAIT`]) and returns its status.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < WAIT,
                "creditd did not exit within {WAIT:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for CreditdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl CreditdServer {
    /// `GET path` on the HTTP port: (status code, body). None when the port does not answer.
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let io = async {
            let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", self.http_port)).await?;
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            conn.write_all(req.as_bytes()).await?;
            let mut raw = Vec::new();
            conn.read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(Duration::from_secs(10), io)
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&raw).to_string();
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((code, body))
    }
}
