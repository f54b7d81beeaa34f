//! Runs the service. Filled in by the server work.

pub async fn run(_args: crate::config::ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
