//! `creditd serve`: the gRPC server (Credits, CreditAdmin, health, reflection), the HTTP probes
//! and metrics, the store pinger and the reaper, and a graceful shutdown.
//!
//! [`run`] is what the binary calls. [`RunningServer::start`] starts the same thing in-process
//! on any store (tests use it with `127.0.0.1:0` ports and a manual-clock store).
//!
//! Shutdown order: health turns NOT_SERVING (gRPC health and `/readyz`), then the gRPC server
//! stops accepting and drains in-flight calls, bounded by the grace period; then the HTTP server
//! and the background tasks stop.

mod http;
mod pricing;
mod tasks;
#[cfg(test)]
mod tests;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::api::auth::TokenSet;
use crate::api::{self, Authorizer, TtlLimits, MAX_DECODE_BYTES};
use crate::config::{mask_url, ServeArgs};
use crate::ledger::Ledger;
use crate::net::{self, ListenAddr};
use crate::pricing::RateCardCell;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::{ClockMode, Store};
use crate::telemetry::{self, metrics, Health, HealthState};

pub use http::router as http_router;
pub use tasks::health_service_names;
pub use tls::TlsSettings;

/// How often the pinger checks the store, and how long one ping may take.
pub const PING_INTERVAL: Duration = Duration::from_millis(500);
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the HTTP server and the tasks get to stop after the gRPC drain.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// What an in-process server needs besides its store.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// gRPC address: TCP (port 0 picks a free port, see [`RunningServer::grpc_addr`]) or a
    /// Unix socket.
    pub grpc_addr: ListenAddr,
    /// HTTP address for /healthz, /readyz, /metrics; port 0 picks a free port.
    pub http_addr: SocketAddr,
    pub ttl: TtlLimits,
    pub reap_interval: Duration,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Who may call Credits and CreditAdmin (open: everyone).
    pub auth: Authorizer,
    /// TLS (and mTLS) for the gRPC listener; `None` is plaintext.
    pub tls: Option<TlsSettings>,
    /// The active rate card (empty: `GetRateCard` answers `RATE_CARD_NOT_CONFIGURED`).
    pub rate_card: RateCardCell,
    /// The ledger the reports read (`None`: they answer `LEDGER_NOT_CONFIGURED`).
    pub ledger: Option<Ledger>,
}

impl Default for ServerOptions {
    /// Loopback with free ports, the default TTLs, a 250 ms reaper.
    fn default() -> Self {
        ServerOptions {
            grpc_addr: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ttl: TtlLimits::default(),
            reap_interval: Duration::from_millis(250),
            ping_interval: PING_INTERVAL,
            ping_timeout: PING_TIMEOUT,
            shutdown_grace: Duration::from_secs(10),
            auth: Authorizer::open(),
            tls: None,
            rate_card: RateCardCell::empty(),
            ledger: None,
        }
    }
}

impl ServerOptions {
    pub fn from_args(args: &ServeArgs) -> Self {
        ServerOptions {
            grpc_addr: args.listen.clone(),
            http_addr: args.http_listen,
            ttl: args.ttl_limits(),
            reap_interval: args.reap_interval(),
            ping_interval: PING_INTERVAL,
            ping_timeout: PING_TIMEOUT,
            shutdown_grace: args.shutdown_grace(),
            auth: Authorizer::open(),
            tls: None,
            rate_card: RateCardCell::empty(),
            ledger: None,
        }
    }

    /// [`ServerOptions::from_args`] with the tokens file and the TLS files read and checked,
    /// and the reports' pool on `--database-url` (connections are made on demand: a ledger that
    /// is down at start-up makes the reports UNAVAILABLE, not the server).
    pub fn load(args: &ServeArgs) -> Result<Self> {
        let auth = match &args.tokens {
            Some(path) => Authorizer::with_tokens(TokenSet::load(path)?),
            None => Authorizer::open(),
        };
        let ledger = match &args.database_url {
            Some(url) => Some(Ledger::connect(url, args.report_connections)?),
            None => None,
        };
        Ok(ServerOptions {
            auth,
            tls: TlsSettings::from_args(args)?,
            ledger,
            ..ServerOptions::from_args(args)
        })
    }
}

/// Says, once at start-up, how calls are authorized and whether the listener is encrypted.
fn log_security(args: &ServeArgs, opts: &ServerOptions) {
    match (opts.auth.tokens(), args.exposed_address()) {
        (Some(tokens), _) => tracing::info!(
            tokens = tokens.entries().len(),
            "authorization on: every Credits and CreditAdmin call needs a bearer token"
        ),
        (None, Some(addr)) => tracing::warn!(
            "INSECURE: --insecure-no-auth on {addr}: NO AUTHORIZATION. Anyone who can connect \
             may charge, read and administer EVERY account. Give --tokens FILE in production."
        ),
        (None, None) => tracing::warn!(
            "no --tokens file: authorization is off (every call allowed; loopback or Unix socket only)"
        ),
    }
    match &opts.tls {
        Some(tls) if tls.is_mutual() => {
            tracing::info!("gRPC over TLS, client certificates required (mTLS)")
        }
        Some(_) => tracing::info!("gRPC over TLS"),
        None => tracing::info!("gRPC in plaintext (no --tls-cert)"),
    }
}

/// Runs `creditd serve` until SIGTERM or SIGINT, then drains and returns `Ok(())`.
/// A second signal during the drain stops at once. SIGHUP reloads the `--pricing` file.
pub async fn run(args: ServeArgs) -> Result<()> {
    args.validate()?;
    telemetry::set_log_format(args.log_format);
    metrics::handle();
    tracing::info!("configuration: {args:?}");
    let mut signals = Signals::install()?;
    let mut opts = ServerOptions::load(&args)?;
    log_security(&args, &opts);
    let pricing = pricing::load(&args)?;
    if let Some(file) = &pricing {
        opts.rate_card = file.cell();
    }
    let plans = Arc::new(pricing::PlanSync::new(opts.rate_card.clone()));
    let _reloader = pricing::reload_on_sighup(pricing.clone(), plans.clone())?;
    let store = build_store(&args).await?;
    let reconciler = start_reconciler(&args).await?;
    let mut server = RunningServer::start(store.clone(), opts).await?;
    // After the start, so that a reload during it still ends with the latest card's plans.
    plans.attach(store);
    tracing::info!(
        "creditd listening grpc={} http={}",
        server.grpc_addr,
        server.http_addr
    );

    tokio::select! {
        signal = signals.next() => tracing::info!("{signal} received: NOT_SERVING, draining in-flight calls"),
        result = server.wait() => {
            return result.context("the server stopped by itself");
        }
    }
    server.trigger_shutdown();
    if let Some((stop, task)) = reconciler {
        let _ = stop.send(true);
        let _ = task.await;
    }
    tokio::select! {
        result = server.wait() => {
            result?;
            tracing::info!("creditd stopped");
            Ok(())
        }
        signal = signals.next() => {
            tracing::warn!("second {signal}: stopping without waiting for in-flight calls");
            server.abort();
            Ok(())
        }
    }
}

/// The store named by the flags: Redis when `--redis-url` is set, else the memory store.
pub async fn build_store(args: &ServeArgs) -> Result<Arc<dyn Store>> {
    match &args.redis_url {
        None => {
            tracing::warn!(
                "NO --redis-url / CREDITD_REDIS_URL: using the in-process MEMORY store. \
                 Balances live in this process only and are LOST when it exits. \
                 For development and tests only."
            );
            Ok(Arc::new(MemoryStore::new(ClockMode::System)))
        }
        Some(url) => {
            let masked = mask_url(url);
            tracing::info!(redis = %masked, shards = args.shards, "using the Redis store");
            let mut store = RedisStore::new(url, args.shards, ClockMode::System)
                .await
                .map_err(|e| anyhow!("cannot set up the Redis store at {masked}: {e}"))?;
            store
                .use_pool(args.redis_pool_size)
                .map_err(|e| anyhow!("--redis-pool-size: {e}"))?;
            if let Some(db) = &args.database_url {
                let ledger = crate::ledger::Ledger::connect(db, 4)?;
                let conn = store.connection().await.map_err(|e| anyhow!("{e}"))?;
                store.set_loader(Arc::new(crate::ledger::rebuild::LedgerLoader {
                    ledger,
                    conn,
                    shards: args.shards,
                }));
                tracing::info!("accounts missing from Redis are loaded from the ledger");
            }
            Ok(Arc::new(store))
        }
    }
}

/// With --reconcile: the reconciler in this process, and the switch that stops it.
async fn start_reconciler(
    args: &ServeArgs,
) -> Result<Option<(watch::Sender<bool>, JoinHandle<Result<()>>)>> {
    let (true, Some(db), Some(redis_url)) = (args.reconcile, &args.database_url, &args.redis_url)
    else {
        return Ok(None);
    };
    let tuning = &args.reconcile_tuning;
    let ledger = crate::ledger::Ledger::connect(db, tuning.parallelism.max(1) + 1)?;
    let cfg = tuning.config(redis_url, args.shards);
    let mut r = crate::ledger::reconciler::Reconciler::new(cfg, ledger).await?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move { r.run(rx).await });
    tracing::info!("reconciler running in this process");
    Ok(Some((tx, task)))
}

/// The bound gRPC listener.
enum GrpcListener {
    Tcp(TcpListener),
    Unix(tokio::net::UnixListener),
}

impl GrpcListener {
    async fn bind(addr: &ListenAddr) -> std::io::Result<Self> {
        Ok(match addr {
            ListenAddr::Tcp(addr) => GrpcListener::Tcp(TcpListener::bind(addr).await?),
            ListenAddr::Unix(path) => GrpcListener::Unix(net::bind_unix(path).await?),
        })
    }

    fn local_addr(&self) -> std::io::Result<ListenAddr> {
        match self {
            GrpcListener::Tcp(listener) => listener.local_addr().map(ListenAddr::Tcp),
            GrpcListener::Unix(listener) => {
                let addr = listener.local_addr()?;
                let path = addr
                    .as_pathname()
                    .ok_or_else(|| std::io::Error::other("the gRPC Unix socket has no path"))?;
                Ok(ListenAddr::Unix(path.to_path_buf()))
            }
        }
    }
}

/// A server started in-process. Dropping it starts a shutdown without waiting for it.
pub struct RunningServer {
    /// The bound gRPC address (the real port when asked for port 0), or its Unix socket.
    pub grpc_addr: ListenAddr,
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    tls: bool,
    health: Health,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<()>>>,
}

impl RunningServer {
    /// Binds both listeners and starts serving. Health is NOT_SERVING until the first
    /// successful store ping; a store that does not answer does not stop the start.
    pub async fn start(store: Arc<dyn Store>, opts: ServerOptions) -> Result<Self> {
        metrics::handle();
        store.set_plans(pricing::plans_of(opts.rate_card.current().as_deref()));
        let grpc_listener = GrpcListener::bind(&opts.grpc_addr)
            .await
            .with_context(|| format!("cannot listen for gRPC on {}", opts.grpc_addr))?;
        let http_listener = TcpListener::bind(opts.http_addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", opts.http_addr))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let health = Health::new();
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let publisher = tasks::HealthPublisher::new(health.clone(), reporter);
        publisher.publish().await; // NOT_SERVING before the first connection
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building the reflection service")?
            .max_decoding_message_size(MAX_DECODE_BYTES);

        // `stop`: asked by the owner. `drain`: tells tonic to stop accepting, once health says
        // NOT_SERVING. `halt`: stops the HTTP server and the tasks after the drain.
        let (stop, mut stop_rx) = watch::channel(false);
        let (drain, mut drain_rx) = watch::channel(false);
        let (halt, halt_rx) = watch::channel(false);

        let background = [
            tokio::spawn(tasks::pinger(
                store.clone(),
                health.clone(),
                opts.ping_interval,
                opts.ping_timeout,
                halt_rx.clone(),
            )),
            tokio::spawn(tasks::reaper(
                store.clone(),
                opts.reap_interval,
                halt_rx.clone(),
            )),
            tokio::spawn(publisher.clone().follow(halt_rx.clone())),
            tokio::spawn(crate::telemetry::metrics::keep_up(halt_rx.clone())),
        ];
        let mut http_halt = halt_rx.clone();
        let http_app = http::router(health.clone());
        let http_server = tokio::spawn(async move {
            axum::serve(http_listener, http_app)
                .with_graceful_shutdown(async move { tasks::stopped(&mut http_halt).await })
                .await
        });
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &opts.tls {
            builder = builder
                .tls_config(tls.server_config())
                .context("invalid TLS certificate or key")?;
        }
        let grpc = builder
            .add_service(health_service.max_decoding_message_size(MAX_DECODE_BYTES))
            .add_service(reflection)
            .add_service(api::credits_server(
                store.clone(),
                opts.ttl,
                opts.rate_card.clone(),
                opts.auth.clone(),
            ))
            .add_service(api::admin_server(
                store.clone(),
                opts.rate_card.clone(),
                opts.ledger.clone(),
                opts.auth.clone(),
            ));
        let drained = async move { tasks::stopped(&mut drain_rx).await };
        let mut grpc_task = match grpc_listener {
            GrpcListener::Tcp(listener) => tokio::spawn(grpc.serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                drained,
            )),
            GrpcListener::Unix(listener) => tokio::spawn(
                grpc.serve_with_incoming_shutdown(net::unix_incoming(listener), drained),
            ),
        };
        let socket_file = match &grpc_addr {
            ListenAddr::Unix(path) => Some(path.clone()),
            ListenAddr::Tcp(_) => None,
        };

        let supervisor_health = health.clone();
        let grace = opts.shutdown_grace;
        let task = tokio::spawn(async move {
            let grpc_result = tokio::select! {
                _ = tasks::stopped(&mut stop_rx) => {
                    supervisor_health.set_shutting_down();
                    publisher.publish().await;
                    let _ = drain.send(true);
                    match tokio::time::timeout(grace, &mut grpc_task).await {
                        Ok(joined) => joined,
                        Err(_) => {
                            tracing::warn!("in-flight calls still running after the {grace:?} grace period: closing them");
                            grpc_task.abort();
                            Ok(Ok(()))
                        }
                    }
                }
                joined = &mut grpc_task => joined,
            };
            if let Some(path) = socket_file {
                let _ = std::fs::remove_file(path);
            }
            let _ = halt.send(true);
            stop_quietly(http_server).await;
            for t in background {
                stop_quietly(t).await;
            }
            match grpc_result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow!(e).context("gRPC server failed")),
                Err(e) => Err(anyhow!("gRPC server task failed: {e}")),
            }
        });

        Ok(RunningServer {
            grpc_addr,
            http_addr,
            tls: opts.tls.is_some(),
            health,
            stop,
            task: Some(task),
        })
    }

    /// The component map (store reachable, shutting down) behind health and `/readyz`.
    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn health_state(&self) -> HealthState {
        self.health.state()
    }

    /// `http://host:port` of the gRPC server (`https` with TLS), for `tonic::transport::Channel`;
    /// `unix:/path` on a Unix socket, for [`net::connect`].
    pub fn grpc_url(&self) -> String {
        match &self.grpc_addr {
            ListenAddr::Tcp(addr) => {
                let scheme = if self.tls { "https" } else { "http" };
                format!("{scheme}://{addr}")
            }
            unix @ ListenAddr::Unix(_) => unix.to_string(),
        }
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn trigger_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until the server has stopped (after a shutdown, or a failure of its own).
    /// Cancel-safe: it can be used inside `tokio::select!`.
    pub async fn wait(&mut self) -> Result<()> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let joined = task.await;
        self.task = None;
        joined.map_err(|e| anyhow!("server supervisor failed: {e}"))?
    }

    /// Graceful shutdown: NOT_SERVING, stop accepting, drain (bounded by the grace period).
    pub async fn shutdown(mut self) -> Result<()> {
        self.trigger_shutdown();
        self.wait().await
    }

    /// Stops at once, without draining.
    pub fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn stop_quietly<T>(task: JoinHandle<T>) {
    let abort = task.abort_handle();
    if tokio::time::timeout(TASK_STOP_TIMEOUT, task).await.is_err() {
        abort.abort();
    }
}

/// SIGTERM and SIGINT (Ctrl-C).
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
