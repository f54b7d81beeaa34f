//! A private PostgreSQL server for one test: a fresh cluster (`initdb`) in a temp dir, a random
//! port on 127.0.0.1, trust auth for the user `creditd`, a database `creditd`. fsync and full
//! page writes are off: a commit survives a crash of the server's processes (it is in the page
//! cache), not of the machine, which no test simulates. It can be stopped, killed (SIGKILL) and
//! restarted on the same port and data dir. Never the system PostgreSQL on 5432.
//!
//! initdb and postgres refuse to run as root: when the tests run as root, the temp dir is handed
//! to the `postgres` system user and both run as that user through `setpriv`, which execs (unlike
//! `runuser`, which forks), so the child we hold is the postmaster itself.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_postgres::NoTls;

use super::{find_on_path, free_port, WAIT};

/// The superuser made by initdb, and the database made at start.
pub const USER: &str = "creditd";
pub const DATABASE: &str = "creditd";

/// The system user that runs PostgreSQL when the tests run as root.
const OS_USER: &str = "postgres";

pub struct PostgresServer {
    initdb: PathBuf,
    postgres: PathBuf,
    /// True when running as root: every PostgreSQL program runs as [`OS_USER`].
    as_os_user: bool,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl PostgresServer {
    /// Creates a fresh cluster, starts it and waits until it answers queries, then creates the
    /// database `creditd`.
    pub fn start() -> Self {
        let (initdb, postgres) = find_binaries().expect(
            "PostgreSQL not found (no initdb on PATH or in /usr/lib/postgresql/*/bin): \
             install it (Debian: apt-get install postgresql)",
        );
        let dir = tempfile::Builder::new()
            .prefix("creditd-pg-")
            .tempdir()
            .expect("temp dir for postgres");
        let mut server = PostgresServer {
            initdb,
            postgres,
            as_os_user: running_as_root(),
            port: 0,
            dir,
            child: None,
        };
        server.init_cluster();
        // A fresh port per attempt: `free_port` leaves a small race with other tests.
        let mut last_err = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => {
                    let sql = format!("CREATE DATABASE {DATABASE}");
                    if let Err(e) = run_sql(server.port, "postgres", &sql) {
                        panic!("{sql} failed: {e}; log:\n{}", server.log());
                    }
                    return server;
                }
                Err(e) => last_err = e,
            }
        }
        panic!("postgres did not start: {last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://creditd@127.0.0.1:<port>/creditd` (trust auth, no password).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// A client on [`Self::url`], its connection driven by a spawned task (needs a Tokio
    /// runtime).
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// The server's log so far (every run since start).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Fast shutdown (SIGINT): open transactions roll back, clients are disconnected, a
    /// shutdown checkpoint is written. Waits for the postmaster to exit (SIGKILL after `WAIT`).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Not reaped yet, so the pid cannot have been reused even if it already exited.
        signal("INT", &[child.id()]);
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(None) if start.elapsed() < WAIT => std::thread::sleep(Duration::from_millis(20)),
                Ok(Some(_)) => return,
                _ => {
                    eprintln!("postgres on port {} ignored SIGINT; killing it", self.port);
                    self.child = Some(child);
                    self.kill();
                    return;
                }
            }
        }
    }

    /// A crash: SIGKILL to the postmaster and to every one of its children (backends,
    /// checkpointer, ...), so no backend outlives it and nothing more reaches the data dir.
    /// The next start runs crash recovery.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        // Freeze the postmaster first so it cannot fork while its children are listed.
        signal("STOP", &[pid]);
        wait_until(Duration::from_secs(5), || {
            matches!(proc_stat(pid), None | Some(('T' | 'Z' | 'X', _)))
        });
        let mut pids = children_of(pid);
        pids.push(pid);
        signal("KILL", &pids);
        let _ = child.wait();
        // The children are reparented and reaped elsewhere; wait until they are gone (or
        // zombies, which hold nothing).
        wait_until(Duration::from_secs(10), || {
            pids.iter()
                .all(|&p| matches!(proc_stat(p), None | Some(('Z' | 'X', _))))
        });
    }

    /// Starts the server again on the same port and data dir (fast-stopping it first if it is
    /// running) and waits until it answers queries. After [`Self::kill`] this includes crash
    /// recovery.
    pub fn restart(&mut self) {
        self.stop();
        let start = Instant::now();
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // The port may take a moment to be free again on a loaded machine.
                Err(e) if start.elapsed() < WAIT => {
                    eprintln!("postgres restart failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("postgres did not restart: {e}"),
            }
        }
    }

    /// Turns TLS on (`ssl = on` with this certificate chain and key, PEM) and restarts. Plain
    /// connections are still accepted; `pg_stat_ssl` tells which a session uses.
    pub fn enable_tls(&mut self, cert_pem: &str, key_pem: &str) {
        let data = self.data_dir();
        for (name, body) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            fs::write(&path, body).expect("write TLS file");
            let mut perms = fs::metadata(&path).expect("TLS file").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
            fs::set_permissions(&path, perms).expect("chmod TLS file");
            if self.as_os_user {
                let status = Command::new("chown")
                    .arg(format!("{OS_USER}:"))
                    .arg(&path)
                    .status()
                    .expect("run chown");
                assert!(status.success(), "chown {} failed", path.display());
            }
        }
        let mut conf = OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        std::io::Write::write_all(&mut conf, b"\nssl = on\n").expect("write postgresql.conf");
        self.restart();
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `bin`, run as [`OS_USER`] when we are root, in the temp dir (root's cwd may not be
    /// readable by that user).
    fn command(&self, bin: &Path) -> Command {
        let mut cmd = if self.as_os_user {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={OS_USER}"))
                .arg(format!("--regid={OS_USER}"))
                .args(["--init-groups", "--"])
                .arg(bin);
            cmd
        } else {
            Command::new(bin)
        };
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    /// Runs initdb into `<dir>/data` (panics with its output on failure).
    fn init_cluster(&self) {
        if self.as_os_user {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{OS_USER}:"))
                .arg(self.dir.path())
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown -R {OS_USER}: {} failed ({status}): running as root, PostgreSQL must run \
                 as the `{OS_USER}` system user (Debian: apt-get install postgresql)",
                self.dir.path().display()
            );
        }
        let log = self.dir.path().join("initdb.log");
        let out = File::create(&log).expect("create initdb.log");
        let mut cmd = self.command(&self.initdb);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .stdout(out.try_clone().expect("dup initdb.log"))
            .stderr(out);
        let status = cmd.status().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
        assert!(
            status.success(),
            "{cmd:?} failed ({status}); output:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Spawns the postmaster on `self.port` and waits until it answers a query, or fails with
    /// the log if it exits (e.g. the port is taken) or `WAIT` passes.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open postgres.log: {e}"))?;
        let mut cmd = self.command(&self.postgres);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            // Not synchronous_commit=off: it keeps commits in shared memory for up to 600 ms,
            // and SIGKILL then loses them. With fsync off, a commit costs only a write().
            .args(["-c", "synchronous_commit=on"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=100"])
            .stdout(log.try_clone().map_err(|e| format!("dup log: {e}"))?)
            .stderr(log);
        let child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if !self.is_running() {
                self.child = None;
                return Err(format!(
                    "postgres on port {} exited; log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            // Fails with "the database system is starting up" until recovery is done.
            if run_sql(self.port, "postgres", "SELECT 1").is_ok() {
                return Ok(());
            }
            if start.elapsed() > WAIT {
                self.kill();
                return Err(format!(
                    "postgres on port {} not ready within {WAIT:?}; log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PostgresServer {
    /// Fast shutdown, then the temp dir goes (root may remove the `postgres` user's files).
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `sql` as `creditd` on database `db` over TCP. Uses its own runtime on its own thread,
/// so it works from sync code and from inside a Tokio runtime alike.
fn run_sql(port: u16, db: &str, sql: &str) -> Result<(), String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            rt.block_on(async {
                let mut config = tokio_postgres::Config::new();
                config
                    .host("127.0.0.1")
                    .port(port)
                    .user(USER)
                    .dbname(db)
                    .connect_timeout(Duration::from_secs(5));
                let query = async {
                    let (client, conn) = config.connect(NoTls).await?;
                    let conn = tokio::spawn(conn);
                    client.batch_execute(sql).await?;
                    drop(client);
                    let _ = conn.await;
                    Ok::<_, tokio_postgres::Error>(())
                };
                match tokio::time::timeout(Duration::from_secs(30), query).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("`{sql}` timed out")),
                }
            })
        })
        .join()
        .unwrap_or_else(|_| Err("query thread panicked".to_string()))
    })
}

/// `initdb` and `postgres` of one installation: `initdb` on PATH (and `postgres` beside its
/// real location, so versions match), else the highest `/usr/lib/postgresql/<version>/bin`.
fn find_binaries() -> Option<(PathBuf, PathBuf)> {
    if let Some(initdb) = find_on_path("initdb") {
        let beside = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| Some(p.parent()?.join("postgres")))
            .filter(|p| p.is_file());
        if let Some(postgres) = beside.or_else(|| find_on_path("postgres")) {
            return Some((initdb, postgres));
        }
    }
    let mut dirs: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|(_, bin)| (bin.join("initdb"), bin.join("postgres")))
        .find(|(initdb, postgres)| initdb.is_file() && postgres.is_file())
}

/// True when our effective uid is 0 (from /proc/self/status, else `id -u`).
fn running_as_root() -> bool {
    let from_proc = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("Uid:"))?;
        // Uid: real effective saved fs
        line.split_whitespace().nth(2).map(|uid| uid == "0")
    });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    })
}

/// Sends `sig` (a name: INT, KILL, ...) to `pids` through the shell's `kill` builtin (no libc
/// here, and /bin/kill is missing from minimal images). Errors (gone pids) are ignored.
fn signal(sig: &str, pids: &[u32]) {
    let _ = Command::new("sh")
        .args([
            "-c",
            "sig=$1; shift; kill -s \"$sig\" \"$@\" 2>/dev/null",
            "sh",
            sig,
        ])
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .status();
}

/// State letter and parent pid of `pid`, from /proc/<pid>/stat; None when it does not exist.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Pids of the live processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| matches!(proc_stat(pid), Some((_, ppid)) if ppid == parent))
        .collect()
}

/// Polls `done` every 10 ms for up to `limit`; gives up silently.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
}
