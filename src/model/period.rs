//! Monthly billing periods anchored on the account's billing day, in UTC.
//!
//! A period starts at 00:00 UTC on the anchor's day of the month (clamped to the month's last
//! day) and ends where the next one starts. The same arithmetic lives in `lib.lua`.

use super::types::Millis;

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)
}

/// Start of the period of month (y, m) for an anchor day.
fn period_start_in(y: i64, m: i64, anchor_day: i64) -> Millis {
    let d = anchor_day.min(days_in_month(y, m));
    days_from_civil(y, m, d) * DAY_MS
}

/// The billing period `[start, end)` that contains `now` for an account anchored at `anchor`.
pub fn bounds(anchor: Millis, now: Millis) -> (Millis, Millis) {
    let (_, _, anchor_day) = civil_from_days(anchor.div_euclid(DAY_MS));
    let (y, m, _) = civil_from_days(now.div_euclid(DAY_MS));
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let this = period_start_in(y, m, anchor_day);
    if now >= this {
        (this, period_start_in(ny, nm, anchor_day))
    } else {
        (period_start_in(py, pm, anchor_day), this)
    }
}

/// The UTC date of a time, as `YYYY-MM-DD`.
pub fn date(t: Millis) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i64, m: i64, d: i64) -> Millis {
        days_from_civil(y, m, d) * DAY_MS
    }

    #[test]
    fn dates_print_as_iso() {
        assert_eq!(date(ms(2026, 2, 28) + 5), "2026-02-28");
        assert_eq!(date(0), "1970-01-01");
    }

    #[test]
    fn civil_round_trip() {
        for z in [-1000, 0, 59, 60, 365, 11_016, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn periods_follow_the_anchor_day_and_clamp_short_months() {
        let anchor = ms(2026, 1, 31) + 5_000;
        assert_eq!(
            bounds(anchor, ms(2026, 2, 10)),
            (ms(2026, 1, 31), ms(2026, 2, 28))
        );
        assert_eq!(
            bounds(anchor, ms(2026, 2, 28)),
            (ms(2026, 2, 28), ms(2026, 3, 31))
        );
        assert_eq!(
            bounds(anchor, ms(2026, 12, 31) + 1),
            (ms(2026, 12, 31), ms(2027, 1, 31))
        );
        let mid = ms(2026, 3, 15);
        assert_eq!(bounds(mid, mid + 1), (ms(2026, 3, 15), ms(2026, 4, 15)));
        assert_eq!(bounds(mid, ms(2026, 3, 14)), (ms(2026, 2, 15), mid));
    }
}
