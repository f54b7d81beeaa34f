//! The tokens file (`--tokens FILE`, TOML): who may call, with which scopes, on which accounts.
//!
//! ```toml
//! [[token]]
//! name = "acme-backend"                 # shown in logs and audit events
//! sha256 = "9f86d081884c7d65..."        # hex SHA-256 of the bearer token (`creditd token hash`)
//! scopes = ["charge", "read"]           # any of charge, read, admin
//! accounts = ["acme-*", "shared-pool"]  # exact ids, `prefix*`, or `*` for every account
//! ```
//!
//! The file never holds a token itself, only its hash. Loading checks every entry and names the
//! entry and the field of the first problem.

use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::api::validate;

/// What a token may do. Each RPC accepts one or more scopes (see [`super::rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Credits mutations and reads: Reserve, Commit, Release, Extend, Quote, Get*.
    Charge,
    /// Reads only: Quote, GetReservation, GetBalance, CreditAdmin Get*/List*.
    Read,
    /// Billing administration: CreditAdmin mutations and reads (the owner role).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Charge, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Charge => "charge",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `accounts`: an exact id, a prefix (`acme-*`), or every account (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountPattern {
    Exact(String),
    Prefix(String),
    All,
}

impl AccountPattern {
    pub fn parse(text: &str) -> Result<AccountPattern, String> {
        if text == "*" {
            return Ok(AccountPattern::All);
        }
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.is_empty() {
            return Err("an empty account id".to_string());
        }
        if body.contains('*') {
            return Err(format!(
                "{text:?}: `*` may only end a prefix (`acme-*`) or stand alone (`*`)"
            ));
        }
        validate::id("accounts", body).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(if prefix {
            AccountPattern::Prefix(body.to_string())
        } else {
            AccountPattern::Exact(body.to_string())
        })
    }

    pub fn matches(&self, account_id: &str) -> bool {
        match self {
            AccountPattern::All => true,
            AccountPattern::Exact(id) => account_id == id,
            AccountPattern::Prefix(prefix) => account_id.starts_with(prefix.as_str()),
        }
    }
}

/// A checked entry of the tokens file.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub name: String,
    pub sha256: [u8; 32],
    pub scopes: Vec<Scope>,
    pub accounts: Vec<AccountPattern>,
}

impl TokenEntry {
    pub fn has_any_scope(&self, wanted: &[Scope]) -> bool {
        wanted.iter().any(|s| self.scopes.contains(s))
    }

    pub fn allows_account(&self, account_id: &str) -> bool {
        self.accounts.iter().any(|p| p.matches(account_id))
    }
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

/// The checked tokens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    entries: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    token: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: Option<String>,
    sha256: Option<String>,
    scopes: Option<Vec<String>>,
    accounts: Option<Vec<String>>,
}

const MAX_NAME_CHARS: usize = 64;

impl TokenSet {
    /// Reads and checks a tokens file; the error names the file, the entry and the field.
    pub fn load(path: &Path) -> Result<TokenSet> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
        TokenSet::parse(&text).with_context(|| format!("tokens file {}", path.display()))
    }

    /// Parses and checks the TOML text of a tokens file.
    pub fn parse(text: &str) -> Result<TokenSet> {
        let raw: RawFile = toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim()))?;
        if raw.token.is_empty() {
            bail!("no [[token]] entries: every call would be refused");
        }
        let mut entries: Vec<TokenEntry> = Vec::with_capacity(raw.token.len());
        for (index, raw_entry) in raw.token.into_iter().enumerate() {
            let label = match &raw_entry.name {
                Some(name) if !name.is_empty() => format!("[[token]] #{} ({name:?})", index + 1),
                _ => format!("[[token]] #{}", index + 1),
            };
            let entry = check_entry(raw_entry).map_err(|e| anyhow!("{label}: {e}"))?;
            if let Some(other) = entries.iter().find(|o| o.name == entry.name) {
                bail!("{label}: field `name`: {:?} is used twice", other.name);
            }
            if let Some(other) = entries.iter().find(|o| o.sha256 == entry.sha256) {
                bail!(
                    "{label}: field `sha256`: same token hash as {:?} (each token must be distinct)",
                    other.name
                );
            }
            entries.push(entry);
        }
        Ok(TokenSet { entries })
    }

    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// The entry whose hash is the SHA-256 of `token`. Every entry is compared, in constant time,
    /// so the time taken does not depend on which entry (if any) matches.
    pub fn find(&self, token: &str) -> Option<&TokenEntry> {
        let digest = sha256(token.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.sha256.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found
    }
}

fn check_entry(raw: RawEntry) -> Result<TokenEntry, String> {
    let name = raw.name.ok_or("field `name` is missing")?;
    if name.trim().is_empty() {
        return Err("field `name` is empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!(
            "field `name`: at most {MAX_NAME_CHARS} printable characters"
        ));
    }
    let hash = raw.sha256.ok_or("field `sha256` is missing")?;
    let sha256 = parse_sha256(&hash).map_err(|e| format!("field `sha256`: {e}"))?;
    let raw_scopes = raw.scopes.ok_or("field `scopes` is missing")?;
    if raw_scopes.is_empty() {
        return Err("field `scopes` is empty (use any of charge, read, admin)".into());
    }
    let mut scopes = Vec::new();
    for text in &raw_scopes {
        let scope = Scope::parse(text).ok_or_else(|| {
            format!("field `scopes`: unknown scope {text:?} (use charge, read or admin)")
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let raw_accounts = raw.accounts.ok_or("field `accounts` is missing")?;
    if raw_accounts.is_empty() {
        return Err("field `accounts` is empty (use exact ids, `prefix*`, or `*`)".into());
    }
    let accounts = raw_accounts
        .iter()
        .map(|a| AccountPattern::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("field `accounts`: {e}"))?;
    Ok(TokenEntry {
        name,
        sha256,
        scopes,
        accounts,
    })
}

fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return Err(format!(
            "must be 64 hex digits (the SHA-256 of the token, from `creditd token hash`), got {} characters",
            text.len()
        ));
    }
    hex::decode_to_slice(text, &mut out).map_err(|e| format!("not hex: {e}"))?;
    Ok(out)
}

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The `sha256` value to put in the tokens file for `token`.
pub fn hash_hex(token: &str) -> String {
    hex::encode(sha256(token.as_bytes()))
}

/// A new random bearer token: `cdt_` and 256 random bits in hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("cdt_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, token: &str, scopes: &str, accounts: &str) -> String {
        format!(
            "[[token]]\nname = {name:?}\nsha256 = {:?}\nscopes = {scopes}\naccounts = {accounts}\n",
            hash_hex(token)
        )
    }

    #[test]
    fn a_good_file_loads_and_finds_tokens_by_hash() {
        let text = entry(
            "backend",
            "t1",
            r#"["charge", "read"]"#,
            r#"["acme-*", "solo"]"#,
        ) + &entry("owner", "t2", r#"["admin"]"#, r#"["*"]"#);
        let set = TokenSet::parse(&text).expect("valid");
        let backend = set.find("t1").expect("t1 known");
        assert_eq!(backend.name, "backend");
        assert_eq!(backend.scopes, vec![Scope::Charge, Scope::Read]);
        assert!(backend.allows_account("acme-1"));
        assert!(backend.allows_account("solo"));
        assert!(!backend.allows_account("solo2"));
        assert!(!backend.allows_account("globex-1"));
        assert!(set.find("t2").expect("t2 known").allows_account("anything"));
        assert!(set.find("t3").is_none());
        assert!(set.find("").is_none());
        assert!(!format!("{set:?}").contains(&hash_hex("t1")));
    }

    #[test]
    fn bad_files_name_the_entry_and_the_field() {
        let good = entry("ok", "t0", r#"["read"]"#, r#"["*"]"#);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no [[token]]"),
            (
                good.clone() + &entry("x", "t1", r#"["write"]"#, r#"["*"]"#),
                "#2 (\"x\"): field `scopes`: unknown scope \"write\"",
            ),
            (
                entry("x", "t1", "[]", r#"["*"]"#),
                "#1 (\"x\"): field `scopes` is empty",
            ),
            (
                entry("x", "t1", r#"["read"]"#, "[]"),
                "field `accounts` is empty",
            ),
            (
                entry("x", "t1", r#"["read"]"#, r#"["a*b"]"#),
                "field `accounts`: \"a*b\"",
            ),
            (
                entry("x", "t1", r#"["read"]"#, r#"["bad id!"]"#),
                "field `accounts`",
            ),
            (
                "[[token]]\nname = \"x\"\nsha256 = \"abc\"\nscopes = [\"read\"]\naccounts = [\"*\"]\n"
                    .into(),
                "field `sha256`: must be 64 hex digits",
            ),
            (
                format!(
                    "[[token]]\nname = \"x\"\nsha256 = \"{}\"\nscopes = [\"read\"]\naccounts = [\"*\"]\n",
                    "zz".repeat(32)
                ),
                "field `sha256`: not hex",
            ),
            (
                "[[token]]\nsha256 = \"00\"\n".into(),
                "#1: field `name` is missing",
            ),
            (
                good.clone() + &entry("ok", "t1", r#"["read"]"#, r#"["*"]"#),
                "#2 (\"ok\"): field `name`",
            ),
            (
                good.clone() + &entry("other", "t0", r#"["read"]"#, r#"["*"]"#),
                "#2 (\"other\"): field `sha256`: same token hash",
            ),
            (good.clone() + "scope = 1\n", "unknown field `scope`"),
        ];
        for (text, want) in cases {
            let err = TokenSet::parse(&text).expect_err("must be refused");
            let message = format!("{err:#}");
            assert!(message.contains(want), "{text}\n→ {message}\nwant {want}");
        }
    }

    #[test]
    fn patterns() {
        assert_eq!(AccountPattern::parse("*"), Ok(AccountPattern::All));
        assert_eq!(
            AccountPattern::parse("acme-*"),
            Ok(AccountPattern::Prefix("acme-".into()))
        );
        assert!(AccountPattern::parse("**").is_err());
        assert!(AccountPattern::parse("").is_err());
        let prefix = AccountPattern::parse("acme-*").expect("prefix");
        assert!(prefix.matches("acme-1"));
        assert!(!prefix.matches("acme"));
        assert!(!prefix.matches("xacme-1"));
    }

    #[test]
    fn generated_tokens_are_distinct_and_hash_to_hex() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with("cdt_") && a.len() == 68);
        assert_eq!(
            hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
