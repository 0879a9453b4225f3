//! Platform API keys (docs/api.md §2.5): a key of role `PLATFORM` belongs to no tenant and may
//! only write system-wide system records. Its `api_keys.tenant_id` is NULL, so the column
//! becomes nullable, `PLATFORM` joins the role CHECK, and a second CHECK ties the two together:
//! a row has no tenant exactly when its role is `PLATFORM` (no tenant key without a tenant, no
//! platform key inside a tenant). Existing rows all have a tenant and a tenant role.
//!
//! PostgreSQL alters the column and the constraints in place. SQLite can alter neither, so the
//! table is rebuilt the documented way (create the new table, copy, drop, rename) with its
//! indexes recreated from their stored SQL; nothing references `api_keys`, so the drop cascades
//! nowhere.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::common::{backend, exec, quoted_list};
use crate::m20261127_000001_create_tenants::API_KEY_ROLES;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "api_keys";
const PLATFORM: &str = "PLATFORM";

/// The roles before (`widen == false`) or after this migration.
fn roles(widen: bool) -> Vec<&'static str> {
    let mut roles = API_KEY_ROLES.to_vec();
    if widen {
        roles.push(PLATFORM);
    }
    roles
}

/// A row has no tenant exactly when it is a platform key.
const SCOPE_CHECK: &str = "((\"role\" = 'PLATFORM') = (\"tenant_id\" IS NULL))";

async fn postgres(manager: &SchemaManager<'_>, widen: bool) -> Result<(), DbErr> {
    if !widen {
        // They cannot exist in the narrower table.
        exec(manager, "DELETE FROM api_keys WHERE role = 'PLATFORM'").await?;
    }
    // The first migration's inline role CHECK got a generated name; later ones are named.
    exec(
        manager,
        "DO $$ DECLARE c record; BEGIN \
           FOR c IN SELECT conname FROM pg_constraint \
             WHERE conrelid = 'api_keys'::regclass AND contype = 'c' \
               AND pg_get_constraintdef(oid) LIKE '%role%' \
           LOOP EXECUTE format('ALTER TABLE api_keys DROP CONSTRAINT %I', c.conname); \
           END LOOP; END $$",
    )
    .await?;
    let role_check = format!(
        "ALTER TABLE {TABLE} ADD CONSTRAINT ck_api_keys_role CHECK (role IN ({}))",
        quoted_list(&roles(widen))
    );
    if widen {
        exec(
            manager,
            &format!("ALTER TABLE {TABLE} ALTER COLUMN tenant_id DROP NOT NULL"),
        )
        .await?;
        exec(manager, &role_check).await?;
        exec(
            manager,
            &format!("ALTER TABLE {TABLE} ADD CONSTRAINT ck_api_keys_scope CHECK {SCOPE_CHECK}"),
        )
        .await
    } else {
        exec(manager, &role_check).await?;
        exec(
            manager,
            &format!("ALTER TABLE {TABLE} ALTER COLUMN tenant_id SET NOT NULL"),
        )
        .await
    }
}

async fn sqlite(manager: &SchemaManager<'_>, widen: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if !widen {
        exec(manager, "DELETE FROM api_keys WHERE role = 'PLATFORM'").await?;
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = '{TABLE}' AND sql IS NOT NULL"
            ),
        ))
        .await?;
    let mut table_sql = None;
    let mut dependents = Vec::new();
    for row in rows {
        let kind: String = row.try_get("", "type")?;
        let sql: String = row.try_get("", "sql")?;
        if kind == "table" {
            table_sql = Some(sql);
        } else {
            dependents.push(sql);
        }
    }
    let table_sql = table_sql.ok_or_else(|| DbErr::Migration(format!("{TABLE} is missing")))?;
    let check = |roles: &[&str]| format!("CHECK (\"role\" IN ({}))", quoted_list(roles));
    let narrow = (
        "\"tenant_id\" varchar(64) NOT NULL".to_owned(),
        check(&roles(false)),
    );
    let wide = (
        "\"tenant_id\" varchar(64)".to_owned(),
        format!("{} CHECK {SCOPE_CHECK}", check(&roles(true))),
    );
    let (from, to) = if widen {
        (narrow, wide)
    } else {
        (wide, narrow)
    };
    let mut rebuilt = table_sql.clone();
    for (old, new) in [(&from.0, &to.0), (&from.1, &to.1)] {
        // `"tenant_id" varchar(64)` is a prefix of its NOT NULL form: match it with its comma.
        let (old, new) = (format!("{old},"), format!("{new},"));
        if !rebuilt.contains(&old) {
            return Err(DbErr::Migration(format!(
                "{TABLE}: `{old}` is not in its definition; refusing to rebuild"
            )));
        }
        rebuilt = rebuilt.replacen(&old, &new, 1);
    }
    let rebuilt = rebuilt.replacen(
        &format!("CREATE TABLE \"{TABLE}\""),
        &format!("CREATE TABLE \"{TABLE}_rebuilt\""),
        1,
    );
    exec(manager, &rebuilt).await?;
    exec(
        manager,
        &format!("INSERT INTO \"{TABLE}_rebuilt\" SELECT * FROM \"{TABLE}\""),
    )
    .await?;
    exec(manager, &format!("DROP TABLE \"{TABLE}\"")).await?;
    exec(
        manager,
        &format!("ALTER TABLE \"{TABLE}_rebuilt\" RENAME TO \"{TABLE}\""),
    )
    .await?;
    for sql in dependents {
        exec(manager, &sql).await?;
    }
    Ok(())
}

async fn apply(manager: &SchemaManager<'_>, widen: bool) -> Result<(), DbErr> {
    match backend(manager)? {
        DbBackend::Postgres => postgres(manager, widen).await,
        _ => sqlite(manager, widen).await,
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too: the rebuild must run on one connection and must not be
    /// left half done.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        apply(manager, true).await
    }

    /// Deletes the platform keys (the narrower table cannot hold them), then restores the
    /// tenant-only table.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        apply(manager, false).await
    }
}
