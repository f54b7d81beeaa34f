//! Priced items on both stores: free units per billing period, zero-price SKUs that go on when
//! credits run out, commits priced at the hold's prices, and free units given back on release.

mod common;

use creditd::model::*;
use creditd::store::Store;

use common::requests::*;
use common::{CREDIT, DAY};

const A: &str = "acct-items";

common::suite!(
    free_grid_rows_come_first_each_period,
    zero_price_features_go_on_at_zero_credits,
    commits_are_priced_at_the_hold_and_use_its_free_units,
    released_holds_give_their_free_units_back,
    quotes_show_prices_and_change_nothing,
);

fn grid_rows(q: i64) -> Line {
    Line {
        sku: "grid.row".into(),
        quantity: q,
        price_num: CREDIT,
        price_den: 1,
        free_per_period: 10,
    }
}

fn chat(q: i64) -> Line {
    Line {
        sku: "chat.message".into(),
        quantity: q,
        price_num: 0,
        price_den: 1,
        free_per_period: 0,
    }
}

/// 0.0123456 credits a second: a fraction of a micro-credit per unit.
fn video_seconds(q: i64) -> Line {
    Line {
        sku: "video.second".into(),
        quantity: q,
        price_num: 123_456,
        price_den: 10,
        free_per_period: 0,
    }
}

fn items_reserve(id: &str, lines: Vec<Line>) -> Reserve {
    Reserve {
        lines,
        card_version: "2026-11".into(),
        ..new_reserve(A, id, 0)
    }
}

async fn funded(s: &dyn Store, credits: i64) {
    s.create_account(new_account(A)).await.unwrap();
    s.create_grant(new_grant(A, "g1", GrantKind::Prepaid, credits * CREDIT))
        .await
        .unwrap();
}

async fn held(s: &dyn Store, req: Reserve) -> Reservation {
    let out = s.reserve(req).await.unwrap();
    assert_eq!(out.denial, None, "{out:?}");
    out.reservation.unwrap()
}

async fn free_grid_rows_come_first_each_period(s: &dyn Store) {
    funded(s, 100).await;
    // 25 rows: the first 10 of the period are free, 15 cost 1 credit each.
    let r = held(s, items_reserve("run-1", vec![grid_rows(25)])).await;
    assert_eq!(r.requested, 15 * CREDIT);
    assert_eq!(r.held, 15 * CREDIT);
    assert_eq!(r.card_version, "2026-11");
    assert_eq!(r.lines[0].free_applied, 10);
    assert_eq!(r.lines[0].amount, 15 * CREDIT);
    // The free rows are used up for this period.
    let r2 = held(s, items_reserve("run-2", vec![grid_rows(4)])).await;
    assert_eq!(r2.requested, 4 * CREDIT);
    assert_eq!(r2.lines[0].free_applied, 0);
    s.commit(new_commit(A, "run-1", 15 * CREDIT)).await.unwrap();
    s.commit(new_commit(A, "run-2", 4 * CREDIT)).await.unwrap();
    // A new billing period brings 10 free rows again.
    let period_end = s.get_balance(A).await.unwrap().period_end;
    let now = s.now().await.unwrap();
    s.advance_clock(period_end - now + DAY).await.unwrap();
    let r3 = held(s, items_reserve("run-3", vec![grid_rows(12)])).await;
    assert_eq!(r3.lines[0].free_applied, 10);
    assert_eq!(r3.requested, 2 * CREDIT);
}

async fn zero_price_features_go_on_at_zero_credits(s: &dyn Store) {
    funded(s, 5).await;
    let spend = held(s, new_reserve(A, "all", 5 * CREDIT)).await;
    assert_eq!(spend.held, 5 * CREDIT);
    s.commit(new_commit(A, "all", 5 * CREDIT)).await.unwrap();
    assert_eq!(s.get_balance(A).await.unwrap().available, 0);
    // Premium work pauses ...
    let denied = s
        .reserve(items_reserve("render", vec![video_seconds(10)]))
        .await
        .unwrap();
    assert_eq!(denied.denial, Some(DenialReason::InsufficientCredits));
    // ... while chat, at price zero, goes on and is still recorded.
    let chat_hold = held(s, items_reserve("chat-1", vec![chat(40)])).await;
    assert_eq!(chat_hold.requested, 0);
    assert_eq!(chat_hold.held, 0);
    assert_eq!(chat_hold.lines[0].quantity, 40);
    let done = s
        .commit(Commit {
            lines: vec![ItemCount {
                sku: "chat.message".into(),
                quantity: 40,
            }],
            ..new_commit(A, "chat-1", 0)
        })
        .await
        .unwrap();
    assert_eq!(done.effect.charged, 0);
    assert_eq!(done.reservation.state, ReservationState::Committed);
}

async fn commits_are_priced_at_the_hold_and_use_its_free_units(s: &dyn Store) {
    funded(s, 100).await;
    // 30 rows held: 10 free, 20 at 1 credit; and 1000 video seconds at 0.0123456 credits.
    let r = held(
        s,
        items_reserve("job", vec![grid_rows(30), video_seconds(1000)]),
    )
    .await;
    // 1000 × 12345.6 micro-credits = 12,345,600 exactly.
    assert_eq!(r.lines[1].amount, 12_345_600);
    assert_eq!(r.requested, 20 * CREDIT + 12_345_600);
    // A partial capture of 8 rows uses free units only.
    let part = s
        .commit(Commit {
            capture_id: Some("p1".into()),
            lines: vec![ItemCount {
                sku: "grid.row".into(),
                quantity: 8,
            }],
            ..new_commit(A, "job", 0)
        })
        .await
        .unwrap();
    assert_eq!(part.effect.charged, 0);
    // The final commit: 7 rows (2 free left, 5 charged) and 3 video seconds, rounded down.
    let done = s
        .commit(Commit {
            lines: vec![
                ItemCount {
                    sku: "grid.row".into(),
                    quantity: 7,
                },
                ItemCount {
                    sku: "video.second".into(),
                    quantity: 3,
                },
            ],
            ..new_commit(A, "job", 0)
        })
        .await
        .unwrap();
    assert_eq!(done.effect.charged, 5 * CREDIT + 37_036);
    assert_eq!(done.reservation.committed, 5 * CREDIT + 37_036);
    // An item the hold does not have is refused and changes nothing.
    held(s, items_reserve("job-2", vec![grid_rows(1)])).await;
    let before = s.get_balance(A).await.unwrap();
    let err = s
        .commit(Commit {
            lines: vec![ItemCount {
                sku: "image.standard".into(),
                quantity: 1,
            }],
            ..new_commit(A, "job-2", 0)
        })
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "INVALID_ARGUMENT");
    assert_eq!(s.get_balance(A).await.unwrap(), before);
}

async fn released_holds_give_their_free_units_back(s: &dyn Store) {
    funded(s, 100).await;
    let r = held(s, items_reserve("a", vec![grid_rows(6)])).await;
    assert_eq!(r.requested, 0);
    let r = held(s, items_reserve("b", vec![grid_rows(6)])).await;
    assert_eq!(r.lines[0].free_applied, 4);
    assert_eq!(r.requested, 2 * CREDIT);
    s.release(A, "a").await.unwrap();
    // The 6 free rows of "a" are back.
    let r = held(s, items_reserve("c", vec![grid_rows(8)])).await;
    assert_eq!(r.lines[0].free_applied, 6);
    assert_eq!(r.requested, 2 * CREDIT);
}

async fn quotes_show_prices_and_change_nothing(s: &dyn Store) {
    funded(s, 3).await;
    let before = s.get_balance(A).await.unwrap();
    let q = s
        .quote(Quote {
            account_id: A.into(),
            subject_id: "user-1".into(),
            amount: 0,
            lines: vec![grid_rows(12), video_seconds(100)],
        })
        .await
        .unwrap();
    assert_eq!(q.amount, 2 * CREDIT + 1_234_560);
    assert_eq!(q.free_applied, 10);
    assert!(!q.affordable);
    assert_eq!(q.denial, Some(DenialReason::InsufficientCredits));
    assert_eq!(s.get_balance(A).await.unwrap(), before);
    // Quoting again gives the same free units: nothing was taken.
    let again = s
        .quote(Quote {
            account_id: A.into(),
            subject_id: "user-1".into(),
            amount: 0,
            lines: vec![grid_rows(12)],
        })
        .await
        .unwrap();
    assert_eq!(again.free_applied, 10);
    assert!(again.affordable);
}
