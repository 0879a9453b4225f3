//! Evidence bundles (docs/domain.md §10.4): the ZIP of a `RUN_BUNDLE`, `TRACE_BUNDLE`,
//! `INCIDENT_BUNDLE` or `COMPLIANCE` export. The worker's job loop ([`super::worker`]) calls
//! [`Attempt::bundle`] for a bundle scope; this file builds the archive's members.

use chrono::{DateTime, Utc};
use entity::{aos_trace_steps, incidents};
use sea_orm::sea_query::IntoIden;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use super::formats::bundle::ZipOut;
use super::formats::json::JsonCells;
use super::formats::{ExportRow, FileDigest};
use super::manifest;
use super::worker::{Attempt, KeysetBatches, Produced, Stop};
use crate::audit::AuditFilter;
use crate::error::{AppError, AppResult};
use crate::exports::jobs::JobStage;
use crate::pagination::Position;
use crate::system::{SystemFilter, SystemRecordScope};

/// What a bundle documents: the one record its request names.
pub(super) enum BundleSubject {
    Run(String),
    Trace(String),
    Incident(String),
    /// An incident, with the compliance (SOC 2) mappings added.
    Compliance(String),
}

impl BundleSubject {
    fn run_id(&self) -> Option<&str> {
        match self {
            Self::Run(id) => Some(id),
            _ => None,
        }
    }

    fn trace_id(&self) -> Option<&str> {
        match self {
            Self::Trace(id) => Some(id),
            _ => None,
        }
    }

    fn incident_id(&self) -> Option<&str> {
        match self {
            Self::Incident(id) | Self::Compliance(id) => Some(id),
            _ => None,
        }
    }

    fn with_compliance_mappings(&self) -> bool {
        matches!(self, Self::Compliance(_))
    }
}

impl Attempt<'_> {
    /// A bundle (ZIP): the run, its trace and steps (with the inflection marked), its system
    /// records and governance audit entries, the incident when there is one, and an evidence
    /// summary (`docs/domain.md` §10.4); a compliance subject adds the SOC 2 mappings.
    pub(super) async fn bundle(
        &mut self,
        subject: BundleSubject,
        as_of: DateTime<Utc>,
    ) -> Result<Produced, Stop> {
        let db = self.db;
        let tenant = self.tenant.clone();
        let backend = self.db.get_database_backend();
        // The subject was checked when the export was requested; gone since, no retry brings
        // it back.
        let not_found = |what: &str| Stop::fatal(format!("{what} not found"));
        let incident = match subject.incident_id() {
            Some(id) => Some(
                incidents::Entity::find()
                    .filter(incidents::Column::TenantId.eq(tenant.as_str()))
                    .filter(incidents::Column::Id.eq(id))
                    .one(db)
                    .await
                    .map_err(AppError::from)?
                    .ok_or_else(|| not_found("incident"))?,
            ),
            None => None,
        };
        let trace = match subject.trace_id() {
            Some(id) => Some(
                crate::traces::store::get_by_trace_id(db, &tenant, id)
                    .await?
                    .ok_or_else(|| not_found("trace"))?,
            ),
            None => None,
        };
        let run_id = subject
            .run_id()
            .map(str::to_owned)
            .or_else(|| trace.as_ref().map(|t| t.run_id.clone()))
            .or_else(|| incident.as_ref().and_then(|i| i.source_run_id.clone()));
        let run = match &run_id {
            Some(id) => crate::runs::store::get_by_run_id(db, &tenant, id).await?,
            None => None,
        };
        // A trace or incident bundle without a run still documents its subject.
        if matches!(subject, BundleSubject::Run(_)) && run.is_none() {
            return Err(not_found("run"));
        }
        let trace = match trace {
            Some(t) => Some(t),
            None => match &run_id {
                Some(id) => crate::traces::store::get_by_run_id(db, &tenant, id)
                    .await?
                    .filter(|t| t.created_at <= as_of),
                None => None,
            },
        };

        let part = self.part_path();
        let mut zip = ZipOut::create(&part)?;
        let mut counts = std::collections::BTreeMap::new();
        let mut total_rows = 0u64;
        if let Some(incident) = &incident {
            zip.json_member(
                "incident.json",
                &serde_json::to_value(incident).unwrap_or_default(),
            )?;
        }
        if let Some(run) = &run {
            zip.json_member("run.json", &row_json(run))?;
        }
        if let Some(trace) = &trace {
            zip.json_member("trace.json", &row_json(trace))?;
        }
        self.progress(JobStage::Running, 0, None, true).await?;

        // Steps: in step order, keyset on step_index, renumbered by position
        // (docs/domain.md §10.4).
        let violation_index = trace
            .as_ref()
            .and_then(|t| t.violation.as_ref())
            .and_then(|v| v.step_index);
        let mut totals = (0u64, 0f64, 0f64, 0i64); // steps, cost, duration, tokens
        if let Some(trace) = &trace {
            zip.start("steps.ndjson", true)?;
            let mut after: Option<i32> = None;
            loop {
                let mut q = aos_trace_steps::Entity::find()
                    .filter(aos_trace_steps::Column::TenantId.eq(trace.tenant_id.as_str()))
                    .filter(aos_trace_steps::Column::TraceId.eq(trace.trace_id.as_str()))
                    .filter(aos_trace_steps::Column::ArchivedAt.is_null())
                    .filter(aos_trace_steps::Column::Timestamp.lte(as_of));
                if let Some(a) = after {
                    q = q.filter(aos_trace_steps::Column::StepIndex.gt(a));
                }
                let rows = q
                    .order_by_asc(aos_trace_steps::Column::StepIndex)
                    .limit(self.batch_size())
                    .all(db)
                    .await
                    .map_err(AppError::from)?;
                let Some(last) = rows.last() else { break };
                after = Some(last.step_index);
                let n = rows.len() as u64;
                for m in rows {
                    let position = totals.0 as i64;
                    let inflection = violation_index.is_some_and(|v| i64::from(v) == position);
                    let tokens = m
                        .outcome_data
                        .as_ref()
                        .and_then(|d| d.get("tokens"))
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(0);
                    totals = (
                        totals.0 + 1,
                        totals.1 + m.cost_cents,
                        totals.2 + m.duration_ms,
                        totals.3 + tokens,
                    );
                    let line = serde_json::json!({
                        "stepIndex": position,
                        "recordedStepIndex": m.step_index,
                        "timestamp": crate::scalars::format_utc(m.timestamp),
                        "stepType": m.skill_name,
                        "skillId": m.skill_id,
                        "status": if inflection { "violation" } else { "ok" },
                        "isInflection": inflection,
                        "recordedStatus": m.status,
                        "tokens": tokens,
                        "costCents": m.cost_cents,
                        "durationMs": m.duration_ms,
                        "contentHash": m.output_hash,
                        "inputHash": m.input_hash,
                        "params": m.params,
                        "outcomeCategory": m.outcome_category,
                        "outcomeCode": m.outcome_code,
                        "outcomeData": m.outcome_data,
                        "retryCount": m.retry_count,
                        "level": m.level,
                    });
                    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
                    bytes.push(b'\n');
                    zip.row(&bytes)?;
                }
                if n < self.batch_size() {
                    break;
                }
                self.progress(JobStage::Running, totals.0, None, false)
                    .await?;
                self.after_batch().await?;
            }
            zip.end()?;
            counts.insert("steps.ndjson".to_owned(), totals.0);
            total_rows += totals.0;
        }
        if let Some(run_id) = &run_id {
            let filter = SystemFilter {
                scope: SystemRecordScope::All,
                correlation_id: Some(run_id.clone()),
                ..SystemFilter::default()
            };
            use entity::system_records::Column as C;
            let n = self
                .ndjson_member(
                    &mut zip,
                    "system_records.ndjson",
                    crate::system::store::filtered(backend, &tenant, &filter),
                    C::CreatedAt,
                    C::Id,
                    crate::system::store::snapshot,
                    |r| pos(r.created_at, &r.id),
                )
                .await?;
            counts.insert("system_records.ndjson".to_owned(), n);
            total_rows += n;
            let filter = AuditFilter {
                run_id: Some(run_id.clone()),
                ..AuditFilter::default()
            };
            use entity::audit_ledger::Column as A;
            let n = self
                .ndjson_member(
                    &mut zip,
                    "audit.ndjson",
                    crate::audit::store::filtered(backend, &tenant, &filter),
                    A::CreatedAt,
                    A::Id,
                    crate::audit::store::snapshot,
                    |r| pos(r.created_at, &r.id),
                )
                .await?;
            counts.insert("audit.ndjson".to_owned(), n);
            total_rows += n;
        }
        let bundle_id = format!("EVD-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let violation = trace.as_ref().and_then(|t| t.violation.as_ref());
        let evidence = serde_json::json!({
            "bundle_id": bundle_id,
            "bundle_type": "evidence",
            "created_at": crate::scalars::format_utc(crate::scalars::now()),
            "as_of": crate::scalars::format_utc(as_of),
            "tenant_id": tenant.as_str(),
            "run_id": run_id.clone().unwrap_or_else(|| "N/A".into()),
            "incident_id": subject.incident_id(),
            "trace_id": trace.as_ref().map_or("N/A".to_owned(), |t| t.trace_id.clone()),
            "agent_id": trace.as_ref().and_then(|t| t.agent_id.clone()),
            "policy_context": {
                "policy_snapshot_id": "N/A",
                "active_policies": [],
                "violated_policy_id": violation.and_then(|v| v.policy_id.clone()),
                "violation_type": incident.as_ref().and_then(|i| i.category.clone()),
            },
            "violation_step_index": violation.and_then(|v| v.step_index),
            "violation_timestamp": violation.and_then(|v| v.timestamp).map(crate::scalars::format_utc),
            "total_steps": totals.0,
            "total_cost_cents": totals.1,
            "total_duration_ms": totals.2,
            "total_tokens": totals.3,
            "run_started_at": run.as_ref().map(|r| crate::scalars::format_utc(r.started_at)),
            "run_completed_at": run.as_ref().and_then(|r| r.completed_at).map(crate::scalars::format_utc),
            "termination_reason": run.as_ref().map(|r| super::columns::gql_name(r.execution_status)),
            "exported_by": "system",
        });
        zip.json_member("evidence.json", &evidence)?;
        if subject.with_compliance_mappings() {
            zip.json_member(
                "soc2.json",
                &soc2_mappings(
                    incident.as_ref(),
                    trace.is_some(),
                    run.is_some(),
                    &bundle_id,
                    as_of,
                ),
            )?;
        }
        let (sha256, bytes, files) = zip.finish()?;
        let file_name = manifest::artefact_name(self.job);
        let path = self.dir().join(&file_name);
        tokio::fs::rename(&part, &path).await?;
        Ok(Produced {
            artefact: FileDigest {
                name: file_name,
                bytes,
                sha256,
                rows: None,
            },
            files,
            row_counts: counts,
            column_set: None,
            path,
            rows: total_rows,
        })
    }

    /// Streams a filtered list into one NDJSON member of a bundle.
    #[expect(clippy::too_many_arguments, reason = "the keyset query's parts")]
    async fn ndjson_member<E, T>(
        &mut self,
        zip: &mut ZipOut,
        name: &str,
        select: Select<E>,
        created_at: E::Column,
        id: E::Column,
        snapshot: fn(E::Model) -> AppResult<T>,
        position: fn(&T) -> Position,
    ) -> Result<u64, Stop>
    where
        E: EntityTrait,
        E::Column: IntoIden + Copy,
        E::Model: Send + Sync,
        T: ExportRow,
    {
        zip.start(name, true)?;
        let mut batches = KeysetBatches {
            db: self.db.clone(),
            select,
            created_at,
            id,
            as_of: self.job.as_of,
            batch: self.batch_size(),
            snapshot,
            position,
            last: None,
            done: false,
        };
        let mut cells = JsonCells::new(T::columns());
        let mut n = 0;
        while let Some(batch) = batches.next().await? {
            for row in &batch {
                cells.buf.clear();
                cells.begin_row();
                row.write(&mut cells);
                cells.end_row();
                cells.buf.push(b'\n');
                zip.row(&cells.buf)?;
                n += 1;
            }
        }
        zip.end()?;
        Ok(n)
    }
}

fn pos(created_at: DateTime<Utc>, id: &str) -> Position {
    Position::of(created_at, id)
}

/// A row as the JSON object of its column set.
fn row_json<T: ExportRow>(row: &T) -> serde_json::Value {
    let mut cells = JsonCells::new(T::columns());
    cells.begin_row();
    row.write(&mut cells);
    cells.end_row();
    serde_json::from_slice(&cells.buf).unwrap_or_default()
}

/// SOC2 control mappings of docs/domain.md §10.4 for the incident's category, with each control's
/// status from the evidence at hand.
fn soc2_mappings(
    incident: Option<&incidents::Model>,
    has_trace: bool,
    has_run: bool,
    bundle_id: &str,
    as_of: DateTime<Utc>,
) -> serde_json::Value {
    let category = incident
        .and_then(|i| i.category.as_deref())
        .unwrap_or("")
        .to_ascii_uppercase();
    let controls: &[&str] = match category.as_str() {
        "EXECUTION_FAILURE" => &["CC7.1", "CC7.2", "CC7.3", "CC7.4", "PI1.1", "PI1.2"],
        "BUDGET_EXCEEDED" => &["CC7.1", "CC7.2", "CC7.3", "CC9.1", "CC9.2"],
        "RATE_LIMIT" => &["CC7.1", "CC7.2", "CC7.3", "A1.1"],
        "POLICY_VIOLATION" => &["CC7.1", "CC7.2", "CC7.3", "CC7.4", "CC6.1"],
        "RESOURCE_EXHAUSTION" => &["CC7.1", "CC7.2", "A1.1", "A1.2"],
        "MANUAL" => &["CC7.1", "CC7.2", "CC7.3", "CC7.5"],
        "HALLUCINATION" => &["PI1.1", "PI1.4", "CC7.1"],
        "EXECUTION_SUCCESS" => &["PI1.1", "PI1.2", "PI1.3"],
        _ => &["CC7.1", "CC7.2", "CC7.3"],
    };
    let has_incident = incident.is_some();
    let mappings: Vec<serde_json::Value> = controls
        .iter()
        .map(|control| {
            let status = if control.starts_with("CC7") {
                match (has_incident, has_trace) {
                    (true, true) => "demonstrated",
                    (false, false) => "pending_review",
                    _ => "partial",
                }
            } else if control.starts_with("PI1") {
                match (has_trace, has_run) {
                    (true, true) => "demonstrated",
                    (false, false) => "pending_review",
                    _ => "partial",
                }
            } else if control.starts_with("A1") {
                if has_trace {
                    "demonstrated"
                } else {
                    "partial"
                }
            } else if has_incident {
                "demonstrated"
            } else {
                "pending_review"
            };
            serde_json::json!({ "control_id": control, "status": status })
        })
        .collect();
    serde_json::json!({
        "bundle_type": "soc2",
        "evidence_bundle_id": bundle_id,
        "incident_category": category,
        "control_mappings": mappings,
        "criteria_covered": controls,
        "attestation_statement": format!(
            "Evidence bundle {bundle_id} documents incident {} as recorded by Logbook.",
            incident.map_or("N/A", |i| i.id.as_str())
        ),
        "compliance_period_start": crate::scalars::format_utc(as_of),
        "compliance_period_end": crate::scalars::format_utc(as_of),
        "review_status": "PENDING",
    })
}
