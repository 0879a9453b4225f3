//! `llmRuns { totalCount }` answered from the run rollups the database keeps on write
//! (docs/domain.md §2.2.1): exact for every time window, whatever wrote the runs (bulk
//! inserts, concurrent `recordLlmRun` mutations), scoped to the tenant, and still exact after the
//! PostgreSQL deltas are folded.

use chrono::{DateTime, Duration, TimeZone, Utc};
use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{fixed_time, insert_runs, make_runs, Backend, TestApp};

const COUNT: &str = r#"
query C($filter: LlmRunFilter, $asOf: DateTime) {
  llmRuns(filter: $filter, asOf: $asOf) { totalCount }
}"#;

const RECORD: &str = r#"
mutation R($input: RecordLlmRunInput!) {
  recordLlmRun(input: $input) { runId }
}"#;

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// acme's historical runs: 200 spread 37 minutes apart over five days from 1 Nov 12:00, one on
/// the stroke of midnight, one in the last microsecond of a day.
fn historical_times() -> Vec<DateTime<Utc>> {
    let mut times: Vec<DateTime<Utc>> = (0..200)
        .map(|i| fixed_time() + Duration::minutes(37 * i))
        .collect();
    times.push(at(3, 0, 0));
    times.push(at(5, 0, 0) - Duration::microseconds(1));
    times
}

async fn total(app: &TestApp, key: &str, filter: Value, as_of: Option<DateTime<Utc>>) -> i64 {
    let data = app
        .data(
            key,
            COUNT,
            json!({ "filter": filter, "asOf": as_of.map(iso) }),
        )
        .await;
    data["llmRuns"]["totalCount"]
        .as_i64()
        .unwrap_or_else(|| panic!("{data}"))
}

async fn totals_are_exact_for_every_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Admin).await;
    let globex = app.key("globex", Role::Viewer).await;
    let times = historical_times();
    let mut runs = make_runs("acme", "h", times.len(), fixed_time());
    for (run, time) in runs.iter_mut().zip(&times) {
        run.created_at = *time;
        run.started_at = *time - Duration::seconds(5);
        run.completed_at = Some(*time);
    }
    insert_runs(app.db(), &runs).await;
    // Another tenant's runs on the same days count for it, not for acme.
    insert_runs(app.db(), &make_runs("globex", "g", 50, at(3, 12, 0))).await;

    // Live writes through the API, concurrently: each one is a run of today.
    let writes = (0..12).map(|i| {
        let (app, key) = (&app, &key);
        async move {
            let input = json!({
                "runId": format!("live-{i}"), "provider": "openai", "model": "gpt-4o",
                "executionStatus": "SUCCEEDED", "startedAt": iso(Utc::now()), "source": "WORKER"
            });
            app.data(key, RECORD, json!({ "input": input })).await
        }
    });
    futures_util::future::join_all(writes).await;
    let live = 12;

    let expect = |lower: Option<DateTime<Utc>>, upper: Option<DateTime<Utc>>| {
        times
            .iter()
            .filter(|t| lower.is_none_or(|l| **t >= l) && upper.is_none_or(|u| **t <= u))
            .count() as i64
    };
    assert_eq!(
        total(&app, &key, Value::Null, None).await,
        times.len() as i64 + live
    );
    let windows = [
        (Some(at(2, 5, 17)), Some(at(5, 19, 3))), // whole days inside, partial edges
        (
            Some(at(3, 0, 0)),
            Some(at(5, 0, 0) - Duration::microseconds(1)),
        ), // whole days only
        (Some(at(3, 0, 0)), Some(at(5, 0, 0))),
        (Some(at(2, 10, 0)), Some(at(2, 20, 0))), // under two days: rows counted
        (None, Some(at(4, 8, 0))),
        (Some(at(1, 0, 0)), Some(at(6, 0, 0))),
        // The month of November less its last days, plus October's last days.
        (Some(at(1, 0, 0) - Duration::days(5)), Some(at(29, 3, 0))),
        // A day less the hours after 19:03 (which hold runs).
        (Some(at(5, 0, 0)), Some(at(5, 19, 3))),
    ];
    for (lower, upper) in windows {
        let filter = json!({ "createdAfter": lower.map(iso), "createdBefore": upper.map(iso) });
        assert_eq!(
            total(&app, &key, filter, None).await,
            expect(lower, upper),
            "window {lower:?} .. {upper:?}"
        );
    }
    // From a mid-day instant on: the historical runs after it, plus today's.
    let filter = json!({ "createdAfter": iso(at(3, 13, 0)) });
    assert_eq!(
        total(&app, &key, filter, None).await,
        expect(Some(at(3, 13, 0)), None) + live
    );
    // `asOf` bounds the window like `createdBefore`.
    let filter = json!({ "createdAfter": iso(at(2, 5, 17)) });
    assert_eq!(
        total(&app, &key, filter.clone(), Some(at(4, 8, 0))).await,
        expect(Some(at(2, 5, 17)), Some(at(4, 8, 0)))
    );
    // A filter the day counts do not cover counts rows.
    let synthetic = runs.iter().filter(|r| r.is_synthetic).count() as i64;
    assert_eq!(
        total(&app, &key, json!({ "isSynthetic": true }), None).await,
        synthetic
    );

    // The totals above came from the rollups: a month row added behind the triggers' back shows
    // in a total over every month, not in a window that does not reach it.
    // A month inside the tenant's read window (GOVERN: a year back) and without runs.
    let month = (Utc::now() - Duration::days(90))
        .format("%Y-%m")
        .to_string();
    app.raw(&format!(
        "INSERT INTO llm_run_rollups VALUES ('acme', 'm', '{month}', '', '', '', '', false, \
            1000, 0, 0, 0)"
    ))
    .await
    .unwrap();
    assert_eq!(
        total(&app, &key, Value::Null, None).await,
        times.len() as i64 + live + 1000
    );
    let filter = json!({ "createdAfter": iso(at(2, 10, 0)), "createdBefore": iso(at(2, 20, 0)) });
    assert_eq!(
        total(&app, &key, filter, None).await,
        expect(Some(at(2, 10, 0)), Some(at(2, 20, 0)))
    );
    app.raw(&format!(
        "DELETE FROM llm_run_rollups WHERE bucket = '{month}'"
    ))
    .await
    .unwrap();

    // Only `totalCount` selected: one statement (the sum), no page read; the arguments are still
    // checked.
    let before = app.state.sql.statements();
    assert_eq!(
        total(&app, &key, Value::Null, None).await,
        times.len() as i64 + live
    );
    assert_eq!(app.state.sql.statements() - before, 1);
    let body = app
        .gql(
            Some(&key),
            "{ llmRuns(after: \"nonsense\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(crate::support::error_code(&body), "BAD_CURSOR", "{body}");

    assert_eq!(total(&app, &globex, Value::Null, None).await, 50);
    app.stop().await;
}

/// PostgreSQL appends delta rows per statement and (tenant, day); folding them keeps every
/// total and leaves one row per (tenant, day).
async fn folding_the_deltas_keeps_the_totals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Admin).await;
    let runs = make_runs("acme", "f", 90, at(4, 23, 0));
    for chunk in runs.chunks(7) {
        insert_runs(app.db(), chunk).await;
    }
    let rows_of = |app: &TestApp| {
        let db = app.db().clone();
        async move {
            use sea_orm::{ConnectionTrait, Statement};
            let row = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT COUNT(*) AS n FROM llm_run_rollups WHERE tenant_id = 'acme' AND grain = 'd'",
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    let deltas = rows_of(&app).await;
    assert!(deltas >= 13, "one delta per insert statement, got {deltas}");
    let window = json!({ "createdAfter": iso(at(1, 0, 0)) });
    let before = (
        total(&app, &key, Value::Null, None).await,
        total(&app, &key, window.clone(), None).await,
    );
    assert_eq!(before, (90, 90));

    let folded = logbook::runs::rollups::compact(app.db()).await.unwrap();
    assert!(folded >= 1);
    assert_eq!(rows_of(&app).await, 1, "all 90 runs fall on 4 Nov");
    let after = (
        total(&app, &key, Value::Null, None).await,
        total(&app, &key, window, None).await,
    );
    assert_eq!(after, before);
    // Nothing left to fold.
    assert_eq!(logbook::runs::rollups::compact(app.db()).await.unwrap(), 0);
    app.stop().await;
}

crate::cases!(
    totals_are_exact_for_every_window,
    [postgres] folding_the_deltas_keeps_the_totals
);
