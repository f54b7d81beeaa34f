//! A workload that produces every kind of money movement on one account: grants of each kind with
//! unit prices, holds committed in full, in part, over the hold (into overage, then debt), released
//! and left to expire, an extension, a voided grant, an expired grant, and debt paid by a new grant.

use creditd::model::*;
use creditd::store::Store;

use super::requests::*;
use super::{CREDIT, DAY, SECOND};

/// Runs the workload on `account` (created here). `tag` keeps ids unique across calls.
pub async fn mixed(s: &dyn Store, account: &str) {
    let mut acc = new_account(account);
    acc.plan_id = String::new();
    acc.parent_id = "customer-1".into();
    acc.overage_enabled = true;
    acc.overage_cap = 5 * CREDIT;
    s.create_account(acc).await.expect("create account");

    let mut g = new_grant(account, "prepaid-1", GrantKind::Prepaid, 100 * CREDIT);
    g.unit_price = 10_000; // 0.01 money per credit
    s.create_grant(g).await.expect("grant");
    let mut g = new_grant(account, "promo-1", GrantKind::Promo, 20 * CREDIT);
    g.expires_at = Some(s.now().await.unwrap() + 2 * DAY);
    s.create_grant(g).await.expect("grant");
    let g = new_grant(account, "void-me", GrantKind::TopUp, 7 * CREDIT);
    s.create_grant(g).await.expect("grant");

    // Full commit, with a provider cost.
    s.reserve(new_reserve(account, "r1", 10 * CREDIT))
        .await
        .unwrap();
    let mut c = new_commit(account, "r1", 8 * CREDIT);
    c.cost = 1_500;
    s.commit(c).await.unwrap();
    // Partial captures, then a final commit.
    s.reserve(new_reserve(account, "r2", 10 * CREDIT))
        .await
        .unwrap();
    s.commit(new_capture(account, "r2", "c1", 3 * CREDIT))
        .await
        .unwrap();
    s.extend(new_extend(account, "r2", 600)).await.unwrap();
    s.commit(new_commit(account, "r2", 4 * CREDIT))
        .await
        .unwrap();
    // Release.
    s.reserve(new_reserve(account, "r3", 5 * CREDIT))
        .await
        .unwrap();
    s.release(account, "r3").await.unwrap();
    // Void a grant.
    s.void_grant(account, "void-me", "test-admin")
        .await
        .unwrap();
    // An overrun that spends every grant, the overage room, then goes into debt.
    s.reserve(new_reserve(account, "r4", 10 * CREDIT))
        .await
        .unwrap();
    s.commit(new_commit(account, "r4", 120 * CREDIT))
        .await
        .unwrap();
    // A hold that expires (the next call settles it), then the promo grant's expiry.
    let mut c = new_grant(account, "pays-debt", GrantKind::TopUp, 50 * CREDIT);
    c.unit_price = 20_000;
    s.create_grant(c).await.unwrap();
    s.reserve(new_reserve(account, "r5", 2 * CREDIT))
        .await
        .unwrap();
    s.advance_clock(61 * SECOND).await.unwrap();
    s.reap().await.unwrap();
    s.advance_clock(3 * DAY).await.unwrap();
    s.get_balance(account).await.unwrap();
    s.reserve(new_reserve(account, "r6", CREDIT)).await.unwrap();
    // A late commit of the expired hold.
    s.commit(new_commit(account, "r5", CREDIT)).await.unwrap();
}
