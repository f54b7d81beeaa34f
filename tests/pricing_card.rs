//! The rate card file: the example loads, YAML and TOML give the same card, and every kind of
//! mistake is refused with an error naming the field. Pricing with multipliers and free units.

use std::collections::HashMap;

use creditd::pricing::{apply_free_units, CardError, Item, PricingError, RateCard, UnitPrice};

const EXAMPLE: &str = include_str!("../examples/pricing.yaml");

fn card(yaml: &str) -> RateCard {
    RateCard::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn err(yaml: &str) -> CardError {
    RateCard::from_yaml(yaml).expect_err("must be refused")
}

fn example() -> RateCard {
    RateCard::from_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/pricing.yaml"
    )))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn micros(p: UnitPrice) -> i64 {
    p.whole_micros().expect("whole micros")
}

#[test]
fn the_example_card_loads_with_exact_prices() {
    let c = example();
    assert_eq!(c, card(EXAMPLE));
    assert_eq!(c.version(), "2025-06-01");
    assert_eq!(c.currency(), "USD");
    assert_eq!(c.top_up_increment_micros(), 10_000_000);

    let row = c.sku("grid.row").expect("grid.row");
    assert_eq!((row.unit.as_str(), micros(row.price)), ("row", 1_000_000));
    assert_eq!(row.free_quantity, 10);
    assert_eq!(row.multipliers["premium"].to_string(), "2.5");
    let prices: Vec<(&str, i64)> = c
        .skus()
        .iter()
        .map(|s| (s.id.as_str(), micros(s.price)))
        .collect();
    assert_eq!(
        prices,
        [
            ("grid.row", 1_000_000),
            ("agent.research.run", 20_000_000),
            ("api.call", 100_000),
            ("image.standard", 5_000_000),
            ("video.export", 50_000_000),
            ("video.second", 2_000_000),
            ("text.tokens_1k", 200_000),
            ("chat.message", 0),
            ("studio.session", 0),
        ]
    );
    let plans: Vec<(&str, i64, String)> = c
        .plans()
        .iter()
        .map(|p| {
            (
                p.id.as_str(),
                p.allowance_micros,
                p.monthly_price.expect("price").to_string(),
            )
        })
        .collect();
    assert_eq!(
        plans,
        [
            ("creator", 1_000_000_000, "12".to_string()),
            ("pro", 5_000_000_000, "45".to_string()),
            ("atelier", 25_000_000_000, "180".to_string()),
        ]
    );
    assert_eq!(
        c.plan("pro").map(|p| p.allowance_micros),
        Some(5_000_000_000)
    );
    assert!(c.plan("enterprise").is_none());
}

#[test]
fn toml_gives_the_same_card_as_yaml() {
    let yaml = r#"
version: "7"
currency: EUR
top_up_increment: "10"
skus:
  - sku: text.tokens_1k
    unit: 1k_tokens
    price: "0.2"
    free_quantity: 5
    multipliers: { premium: "2.5" }
plans:
  - plan_id: pro
    allowance: "5000"
    monthly_price: "45.50"
"#;
    let toml = r#"
version = "7"
currency = "EUR"
top_up_increment = "10"

[[skus]]
sku = "text.tokens_1k"
unit = "1k_tokens"
price = "0.2"
free_quantity = 5
multipliers = { premium = "2.5" }

[[plans]]
plan_id = "pro"
allowance = "5000"
monthly_price = "45.50"
"#;
    let from_toml = RateCard::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_toml, card(yaml));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("card.TOML");
    std::fs::write(&path, toml).expect("write");
    assert_eq!(RateCard::from_file(&path), Ok(from_toml));
}

/// A valid card with one line replaced or added, for the table below.
fn with(line_from: &str, line_to: &str) -> String {
    let base = r#"version: "v1"
currency: USD
top_up_increment: "10"
skus:
  - sku: a
    unit: call
    price: "1"
    free_quantity: 3
    multipliers:
      premium: "2.5"
  - sku: b
    unit: row
    price: "0.2"
plans:
  - plan_id: creator
    allowance: "1000"
    monthly_price: "12"
"#;
    assert!(base.contains(line_from), "{line_from}");
    base.replacen(line_from, line_to, 1)
}

#[test]
fn bad_files_are_refused_naming_the_field() {
    let table: Vec<(String, &str, &str)> = vec![
        (with("version: \"v1\"\n", ""), "version", "is required"),
        (
            with("version: \"v1\"", "version: \"\""),
            "version",
            "is required",
        ),
        (
            with("version: \"v1\"", "version: [1]"),
            "version",
            "invalid type",
        ),
        (
            with("currency: USD", "currency: usd"),
            "currency",
            "ISO 4217",
        ),
        (with("currency: USD\n", ""), "currency", "monthly_price"),
        (
            with("top_up_increment: \"10\"", "top_up_increment: \"0\""),
            "top_up_increment",
            "more than 0",
        ),
        (
            with(
                "top_up_increment: \"10\"",
                "top_up_increment: \"0.0000001\"",
            ),
            "top_up_increment",
            "more than 6 decimal places",
        ),
        (
            with("top_up_increment: \"10\"", "colour: blue"),
            "colour",
            "unknown field",
        ),
        (
            with("price: \"1\"", "price: \"1.2.3\""),
            "skus[0].price",
            "\"1.2.3\" is not a decimal number of credits",
        ),
        (
            with("price: \"1\"", "price: \"-1\""),
            "skus[0].price",
            "is negative",
        ),
        (
            with("price: \"1\"", "price: \"\""),
            "skus[0].price",
            "is empty",
        ),
        (
            with("price: \"1\"", "price: 1.5"),
            "skus[0].price",
            "floating-point",
        ),
        (
            with("price: \"1\"", "price: true"),
            "skus[0].price",
            "boolean",
        ),
        (
            with("    price: \"1\"\n", ""),
            "skus[0].price",
            "is required",
        ),
        (
            with("price: \"1\"", "price: \"9007199254.740992\""),
            "skus[0].price",
            "too large",
        ),
        (
            with("price: \"1\"", "price: \"0.0000000000001\""),
            "skus[0].price",
            "more than 12 decimal places",
        ),
        (
            with("price: \"1\"", "prise: \"1\""),
            "skus[0].prise",
            "unknown field",
        ),
        (
            with("free_quantity: 3", "free_quantity: -1"),
            "skus[0].free_quantity",
            "is negative",
        ),
        (
            with("free_quantity: 3", "free_quantity: \"2.5\""),
            "skus[0].free_quantity",
            "whole number",
        ),
        (
            with("free_quantity: 3", "free_quantity: 9007199254740992"),
            "skus[0].free_quantity",
            "2^53",
        ),
        (
            with("  - sku: a", "  - sku: \"a b\""),
            "skus[0].sku",
            "A-Z a-z 0-9",
        ),
        (
            with("  - sku: a", "  - unit_price: 1"),
            "skus[0].unit_price",
            "unknown field",
        ),
        (
            with("  - sku: b", "  - sku: a"),
            "skus[1].sku",
            "already defined by skus[0]",
        ),
        (with("    unit: row\n", ""), "skus[1].unit", "is required"),
        (
            with("premium: \"2.5\"", "premium: \"x\""),
            "skus[0].multipliers.premium",
            "not a decimal number",
        ),
        (
            with("premium: \"2.5\"", "premium: \"1.0000001\""),
            "skus[0].multipliers.premium",
            "more than 6 decimal places",
        ),
        (
            with("premium: \"2.5\"", "\"pre mium\": \"2\""),
            "skus[0].multipliers.pre mium",
            "A-Z a-z 0-9",
        ),
        (
            with("premium: \"2.5\"", "premium: \"2\"\n      premium: \"3\""),
            "skus[0].multipliers",
            "given twice",
        ),
        (
            with("price: \"1\"", "price: \"9000000000\""),
            "skus[0].multipliers",
            "too large",
        ),
        (
            with("  - plan_id: creator", "  - plan_id: \"\""),
            "plans[0].plan_id",
            "is required",
        ),
        (
            with("    allowance: \"1000\"\n", ""),
            "plans[0].allowance",
            "is required",
        ),
        (
            with("allowance: \"1000\"", "allowance: \"1000.0000001\""),
            "plans[0].allowance",
            "more than 6 decimal places",
        ),
        (
            with("allowance: \"1000\"", "allowance: \"9999999999\""),
            "plans[0].allowance",
            "2^53",
        ),
        (
            with("monthly_price: \"12\"", "monthly_price: \"twelve\""),
            "plans[0].monthly_price",
            "not a decimal number of money",
        ),
        (
            with(
                "    monthly_price: \"12\"\n",
                "  - plan_id: creator\n    allowance: \"1\"\n",
            ),
            "plans[1].plan_id",
            "already defined by plans[0]",
        ),
        ("version: [v1\n".to_string(), "", ""),
        ("- a\n- b\n".to_string(), "file", "invalid type"),
    ];
    for (yaml, field, message) in &table {
        let e = err(yaml);
        if !field.is_empty() {
            assert_eq!(e.field, *field, "{yaml}\n→ {e}");
        }
        assert!(e.message.contains(message), "{yaml}\n→ {e}");
        assert!(e.to_string().starts_with(&format!("{}: ", e.field)));
    }
    assert_eq!(
        err(&with("price: \"1\"", "price: \"1.2.3\"")).to_string(),
        "skus[0].price: \"1.2.3\" is not a decimal number of credits"
    );
}

#[test]
fn a_missing_or_oversized_file_is_an_error_on_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = RateCard::from_file(&dir.path().join("absent.yaml")).expect_err("absent");
    assert_eq!(e.field, "file");
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; 5 * 1024 * 1024]).expect("write");
    let e = RateCard::from_file(&big).expect_err("too big");
    assert_eq!(e.field, "file");
    assert!(e.message.contains("bytes"), "{e}");
}

#[test]
fn items_are_priced_exactly_with_multipliers() {
    let c = example();
    let lines = c
        .price(&[
            Item::new("grid.row", 25),
            Item::new("text.tokens_1k", 3).with_multipliers(["premium"]),
            Item::new("image.standard", 2).with_multipliers(["hd"]),
            Item::new("chat.message", 1_000),
        ])
        .expect("priced");
    let got: Vec<(&str, i64, i64, i64, i64)> = lines
        .iter()
        .map(|l| {
            (
                l.sku.as_str(),
                l.quantity,
                micros(l.unit_price),
                l.free_quantity_per_period,
                l.amount_micros,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("grid.row", 25, 1_000_000, 10, 25_000_000),
            ("text.tokens_1k", 3, 500_000, 0, 1_500_000),
            ("image.standard", 2, 10_000_000, 0, 20_000_000),
            ("chat.message", 1_000, 0, 0, 0),
        ]
    );
    assert_eq!(lines[1].multipliers, ["premium"]);
}

#[test]
fn sub_micro_prices_round_down_per_line() {
    let c = card(
        r#"
version: "t"
skus:
  - sku: tok
    unit: token
    price: "0.0000002"
    multipliers: { premium: "2.5" }
"#,
    );
    let lines = c
        .price(&[
            Item::new("tok", 7),
            Item::new("tok", 7).with_multipliers(["premium"]),
            Item::new("tok", 9_007_199_254_740_991),
        ])
        .expect("priced");
    // 0.2 micros per token: 7 tokens = 1.4 → 1. Premium: 0.5 micros: 3.5 → 3.
    assert_eq!(
        (
            lines[0].unit_price.numerator(),
            lines[0].unit_price.denominator()
        ),
        (2, 10)
    );
    assert_eq!(lines[0].amount_micros, 1);
    assert_eq!(
        (
            lines[1].unit_price.numerator(),
            lines[1].unit_price.denominator()
        ),
        (5, 10)
    );
    assert_eq!(lines[1].amount_micros, 3);
    assert_eq!(lines[2].amount_micros, 1_801_439_850_948_198);
}

#[test]
fn bad_items_are_refused_naming_the_item() {
    let c = example();
    let cases: Vec<(Vec<Item>, &str, &str)> = vec![
        (
            vec![Item::new("grid.row", 1), Item::new("grid.rows", 1)],
            "items[1].sku",
            "not on the rate card",
        ),
        (
            vec![Item::new("grid.row", 0)],
            "items[0].quantity",
            "between 1 and",
        ),
        (
            vec![Item::new("grid.row", -5)],
            "items[0].quantity",
            "between 1 and",
        ),
        (
            vec![Item::new("grid.row", 1 << 53)],
            "items[0].quantity",
            "between 1 and",
        ),
        (
            vec![Item::new("grid.row", (1 << 53) - 1)],
            "items[0].quantity",
            "2^53",
        ),
        (
            vec![Item::new("video.export", 180_143_986)],
            "items[0].quantity",
            "2^53",
        ),
        (
            vec![Item::new("grid.row", 1).with_multipliers(["hd"])],
            "items[0].multipliers[0]",
            "not a multiplier",
        ),
        (
            vec![Item::new("grid.row", 1).with_multipliers(["premium", "premium"])],
            "items[0].multipliers[1]",
            "repeated",
        ),
    ];
    for (items, field, message) in cases {
        let e: PricingError = c.price(&items).expect_err("refused");
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(message), "{e}");
        let as_model: creditd::error::Error = e.into();
        assert_eq!(as_model.reason(), "INVALID_ARGUMENT");
    }
    // Just below the limit is fine: 180,143,985 exports × 50 credits < 2^53 micros.
    let lines = c
        .price(&[Item::new("video.export", 180_143_985)])
        .expect("fits");
    assert_eq!(lines[0].amount_micros, 9_007_199_250_000_000);
}

#[test]
fn free_units_are_taken_off_first_and_shared_between_lines() {
    let c = example();
    let lines = c
        .price(&[
            Item::new("grid.row", 4),
            Item::new("text.tokens_1k", 2),
            Item::new("grid.row", 5).with_multipliers(["premium"]),
        ])
        .expect("priced");
    // 7 of the 10 free rows are already used this period: 3 left.
    let used: HashMap<&str, i64> = [("grid.row", 7)].into();
    let charge =
        apply_free_units(&lines, |sku| used.get(sku).copied().unwrap_or(0)).expect("charge");
    let got: Vec<(i64, i64, i64)> = charge
        .lines
        .iter()
        .map(|l| (l.free_applied, l.billable_quantity, l.amount_due_micros))
        .collect();
    assert_eq!(
        got,
        [(3, 1, 1_000_000), (0, 2, 400_000), (0, 5, 12_500_000)]
    );
    assert_eq!(charge.free_applied, 3);
    assert_eq!(charge.total_micros, 13_900_000);
    assert_eq!(
        charge.free_used_by_sku(),
        [("grid.row".to_string(), 3)].into()
    );

    // A fresh period: the 10 free rows cover both row lines (4 + 5).
    let fresh = apply_free_units(&lines, |_| 0).expect("charge");
    let got: Vec<(i64, i64)> = fresh
        .lines
        .iter()
        .map(|l| (l.free_applied, l.amount_due_micros))
        .collect();
    assert_eq!(got, [(4, 0), (0, 400_000), (5, 0)]);
    assert_eq!(fresh.total_micros, 400_000);
    assert_eq!(
        fresh.free_used_by_sku(),
        [("grid.row".to_string(), 9)].into()
    );

    // Free units used beyond the allowance (or a negative count) never make anything free.
    let over = apply_free_units(&lines, |_| 50).expect("charge");
    assert_eq!(over.free_applied, 0);
    assert_eq!(over.total_micros, 4_000_000 + 400_000 + 12_500_000);
}

#[test]
fn a_total_of_2_pow_53_or_more_is_an_error() {
    let c = example();
    let lines = c
        .price(&[
            Item::new("video.export", 100_000_000),
            Item::new("video.export", 100_000_000),
        ])
        .expect("each line fits");
    let e = apply_free_units(&lines, |_| 0).expect_err("total too large");
    assert_eq!(e.field, "items");
    assert!(e.message.contains("2^53"), "{e}");
}
