//! What Redis itself saw during a phase (with `--redis-url`): how many scripts it ran per RPC and
//! how long they took it (`INFO commandstats`), and how many clients were connected (`INFO
//! clients`).

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;

/// The commands that run a script in one round trip.
const SCRIPT_COMMANDS: [&str; 6] = [
    "evalsha",
    "eval",
    "evalsha_ro",
    "eval_ro",
    "fcall",
    "fcall_ro",
];

pub struct RedisProbe {
    conn: MultiplexedConnection,
}

impl RedisProbe {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).context("--redis-url")?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .context("connecting to --redis-url")?;
        Ok(RedisProbe { conn })
    }

    /// Scripts Redis has run since its start (or its last CONFIG RESETSTAT), and their time.
    pub async fn script_calls(&mut self) -> Result<ScriptCounts> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn)
            .await
            .context("INFO commandstats")?;
        Ok(script_calls(&info))
    }

    /// Clients connected now, this probe excluded.
    pub async fn other_clients(&mut self) -> Result<u64> {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut self.conn)
            .await
            .context("INFO clients")?;
        let connected = field(&info, "connected_clients").context("connected_clients")?;
        Ok(connected.parse::<u64>()?.saturating_sub(1))
    }
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
}

/// Script calls and the microseconds Redis spent running them (its own clock, the commands the
/// scripts ran included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptCounts {
    pub calls: u64,
    pub usec: u64,
}

impl std::ops::Add for ScriptCounts {
    type Output = ScriptCounts;

    fn add(self, other: ScriptCounts) -> ScriptCounts {
        ScriptCounts {
            calls: self.calls + other.calls,
            usec: self.usec + other.usec,
        }
    }
}

impl ScriptCounts {
    /// What was counted between `before` and `self`.
    pub fn since(self, before: ScriptCounts) -> ScriptCounts {
        ScriptCounts {
            calls: self.calls.saturating_sub(before.calls),
            usec: self.usec.saturating_sub(before.usec),
        }
    }
}

/// The sums of `calls=` and `usec=` over the script commands of an `INFO commandstats` answer.
fn script_calls(info: &str) -> ScriptCounts {
    let stat = |stats: &str, name: &str| -> u64 {
        stats
            .split(',')
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    SCRIPT_COMMANDS
        .iter()
        .filter_map(|name| field(info, &format!("cmdstat_{name}")))
        .map(|stats| ScriptCounts {
            calls: stat(stats, "calls="),
            usec: stat(stats, "usec="),
        })
        .fold(ScriptCounts::default(), |sum, counts| sum + counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_calls_are_read_from_commandstats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=57372,usec=1,usec_per_call=0.1,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_evalsha:calls=28809,usec=9,usec_per_call=0.2,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_eval:calls=3,usec=9,usec_per_call=0.2,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_evalsha_ro:calls=2,usec=1\r\n\
                    cmdstat_fcall:calls=100,usec=4200,usec_per_call=42.0,rejected_calls=0,failed_calls=1\r\n";
        assert_eq!(
            script_calls(info),
            ScriptCounts {
                calls: 28914,
                usec: 4219
            }
        );
        assert_eq!(
            field("connected_clients:3\r\n", "connected_clients"),
            Some("3")
        );
    }
}
