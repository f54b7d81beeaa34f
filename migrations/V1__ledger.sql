-- creditd's ledger: the system of record, fed from the Redis shard streams by `creditd reconcile`.
-- Amounts are micro-credits (bigint, below 2^53); money is in micros of the deployment's currency.

-- Every event, once. (account_id, seq) is the event id; `digest` is the SHA-256 of the event's
-- canonical encoding, so that a second delivery of the same event is recognised and a different
-- event under the same id (Redis rolled back behind the ledger) is caught.
CREATE TABLE ledger_events (
    account_id     text        NOT NULL,
    seq            bigint      NOT NULL CHECK (seq > 0),
    kind           text        NOT NULL,
    at             timestamptz NOT NULL,
    reservation_id text        NOT NULL DEFAULT '',
    subject_id     text        NOT NULL DEFAULT '',
    labels         jsonb       NOT NULL DEFAULT '{}',
    detail         text        NOT NULL DEFAULT '',
    actor          text        NOT NULL DEFAULT '',
    cost_micros    bigint      NOT NULL DEFAULT 0,
    before         jsonb,
    after          jsonb,
    digest         bytea       NOT NULL,
    stream_entry   text        NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, seq)
);
CREATE INDEX ledger_events_reservation ON ledger_events (account_id, reservation_id)
    WHERE reservation_id <> '';

-- Double entry: each move of an event (an amount of one grant from one bucket to another) is
-- two postings of opposite sign, so the postings of every event sum to zero. A ledger account is
-- (account_id, grant_id, bucket); grant_id '@overage' and '@debt' are the pay-as-you-go room and
-- the debt. Buckets: issued, available, held, spent, expired, voided, overage, debt, debt_paid.
CREATE TABLE ledger_entries (
    account_id    text   NOT NULL,
    seq           bigint NOT NULL,
    n             int    NOT NULL,
    grant_id      text   NOT NULL,
    bucket        text   NOT NULL,
    amount_micros bigint NOT NULL CHECK (amount_micros <> 0),
    PRIMARY KEY (account_id, seq, n),
    FOREIGN KEY (account_id, seq) REFERENCES ledger_events (account_id, seq)
);

-- The running balance of every ledger account (the sum of its postings, kept by the reconciler
-- in the same transaction as the postings).
CREATE TABLE ledger_balances (
    account_id     text   NOT NULL,
    grant_id       text   NOT NULL,
    bucket         text   NOT NULL,
    balance_micros bigint NOT NULL,
    PRIMARY KEY (account_id, grant_id, bucket)
);

-- Per account: the highest sequence number applied and how many events were applied. The two are
-- equal when the ledger holds every event up to max_seq (replicas may apply out of order). The
-- parent (customer) comes from the latest account event (parent_seq), for P&L roll-ups.
CREATE TABLE ledger_heads (
    account_id text        PRIMARY KEY,
    max_seq    bigint      NOT NULL,
    applied    bigint      NOT NULL,
    parent_id  text        NOT NULL DEFAULT '',
    parent_seq bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_heads_parent ON ledger_heads (parent_id) WHERE parent_id <> '';

-- The terms of every grant, for revenue (credits spent x unit price).
CREATE TABLE ledger_grants (
    account_id        text        NOT NULL,
    grant_id          text        NOT NULL,
    kind              text        NOT NULL,
    amount_micros     bigint      NOT NULL,
    unit_price_micros bigint      NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz,
    PRIMARY KEY (account_id, grant_id)
);

-- What each commit charged by SKU (the commit's priced items, capped at what it charged; the
-- rest of the charge, if any, under sku '').
CREATE TABLE ledger_item_charges (
    account_id    text   NOT NULL,
    seq           bigint NOT NULL,
    n             int    NOT NULL,
    sku           text   NOT NULL,
    quantity      bigint NOT NULL,
    amount_micros bigint NOT NULL,
    PRIMARY KEY (account_id, seq, n),
    FOREIGN KEY (account_id, seq) REFERENCES ledger_events (account_id, seq)
);

-- The latest of every record the account scripts wrote to Redis (kind: a = account, g = grant,
-- r = reservation, u = usage counter, p = subject policy), as written: what a rebuild writes back.
CREATE TABLE ledger_records (
    account_id text   NOT NULL,
    kind       "char" NOT NULL,
    key        text   NOT NULL,
    seq        bigint NOT NULL,
    value      bytea  NOT NULL,
    PRIMARY KEY (account_id, kind, key)
);

-- Stream entries the reconciler could not apply: undecodable after N deliveries, or a different
-- history under sequence numbers the ledger already holds.
CREATE TABLE ledger_dead_letters (
    stream     text        NOT NULL,
    entry_id   text        NOT NULL,
    account_id text        NOT NULL DEFAULT '',
    seq        bigint      NOT NULL DEFAULT 0,
    reason     text        NOT NULL,
    deliveries int         NOT NULL,
    events     bytea,
    state      bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, entry_id)
);
