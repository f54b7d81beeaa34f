//! The account scripts as one Redis function library: loaded once with `FUNCTION LOAD`, each
//! operation called with `FCALL`.
//!
//! `lib.lua` and every operation's file make one library. Each operation is a function whose
//! body is its file, after `begin(keys, args)`. As EVALSHA scripts, each call re-ran `lib.lua`'s
//! top level: about 75 closures made and garbage-collected per call. That cost 6–7 µs, and the
//! whole script 45–65 µs of Redis time per Reserve or Commit. As a library the helpers are made
//! once, when Redis loads it: 37–42 µs (BENCHMARKS.md, "What moved the figures"). Functions need
//! Redis 7.0 or later (Valkey 7.2 or later).
//!
//! The library's name carries a digest of its code (`creditd_<12 hex>`), and so does each of its
//! functions (`creditd_<12 hex>_reserve`; function names are global in Redis). Two creditd
//! builds can therefore share one Redis during a rolling deploy, each calling its own code.
//! A Redis that does not hold the library (a restart without persistence, a new replica, a
//! `FUNCTION FLUSH`) answers "Function not found". The store then loads the library and calls
//! once more ([`is_missing`]), as it used to do with EVALSHA and NOSCRIPT.

use sha2::{Digest, Sha256};

const LIB: &str = include_str!("lib.lua");

/// Every account operation: its function's short name and its source, in `lib.lua`'s terms.
const OPERATIONS: [(&str, &str); 17] = [
    ("create_account", include_str!("create_account.lua")),
    ("get_account", include_str!("get_account.lua")),
    ("update_account", include_str!("update_account.lua")),
    ("create_grant", include_str!("create_grant.lua")),
    ("list_grants", include_str!("list_grants.lua")),
    ("void_grant", include_str!("void_grant.lua")),
    ("quote", include_str!("quote.lua")),
    ("reserve", include_str!("reserve.lua")),
    ("commit", include_str!("commit.lua")),
    ("release", include_str!("release.lua")),
    ("extend", include_str!("extend.lua")),
    ("get_reservation", include_str!("get_reservation.lua")),
    ("get_balance", include_str!("get_balance.lua")),
    ("settle", include_str!("settle.lua")),
    ("set_policy", include_str!("set_policy.lua")),
    ("get_policy", include_str!("get_policy.lua")),
    ("request_access", include_str!("request_access.lua")),
];

/// An account operation of the library, by its full function name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function(String);

impl Function {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// The library's code and name, built once per store.
#[derive(Debug, Clone)]
pub struct Library {
    name: String,
    code: String,
}

impl Library {
    pub fn new() -> Self {
        let mut digest = Sha256::new();
        digest.update(LIB);
        for (op, source) in OPERATIONS {
            digest.update([0]);
            digest.update(op);
            digest.update([0]);
            digest.update(source);
        }
        let name = format!("creditd_{}", &hex::encode(digest.finalize())[..12]);
        let mut code = format!("#!lua name={name}\n{LIB}\n");
        for (op, source) in OPERATIONS {
            code.push_str(&format!(
                "redis.register_function('{name}_{op}', function(keys, args)\n\
                 begin(keys, args)\n{source}\nend)\n"
            ));
        }
        Library { name, code }
    }

    /// The library's name, `creditd_` and 12 hex digits of its code's SHA-256.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The code for `FUNCTION LOAD`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The function of operation `op` (one of [`OPERATIONS`]).
    pub fn function(&self, op: &str) -> Function {
        debug_assert!(OPERATIONS.iter().any(|(name, _)| *name == op), "{op}");
        Function(format!("{}_{op}", self.name))
    }

    /// Loads the library into Redis; one that is already there (by its name, so the same code)
    /// is left as it is.
    pub async fn load<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
    ) -> redis::RedisResult<()> {
        let loaded: redis::RedisResult<String> = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(&self.code)
            .query_async(conn)
            .await;
        match loaded {
            Err(e) if !already_loaded(&e) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Default for Library {
    fn default() -> Self {
        Self::new()
    }
}

/// Redis does not hold the function called (so not the library): load it and call again.
pub fn is_missing(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::ResponseError
        && e.detail()
            .is_some_and(|d| d.starts_with("Function not found"))
}

fn already_loaded(e: &redis::RedisError) -> bool {
    e.detail()
        .is_some_and(|d| d.starts_with("Library '") && d.ends_with("' already exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_follows_the_code_and_every_operation_is_registered_under_it() {
        let lib = Library::new();
        assert!(lib.name().starts_with("creditd_"));
        assert_eq!(lib.name().len(), "creditd_".len() + 12);
        assert!(lib
            .code()
            .starts_with(&format!("#!lua name={}\n", lib.name())));
        for (op, _) in OPERATIONS {
            let f = lib.function(op);
            assert_eq!(f.name(), format!("{}_{op}", lib.name()));
            assert_eq!(
                lib.code()
                    .matches(&format!("redis.register_function('{}',", f.name()))
                    .count(),
                1
            );
        }
        assert_eq!(
            Library::new().name(),
            lib.name(),
            "the same code, the same name"
        );
    }
}
