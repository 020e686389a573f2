//! Scoped API keys (the OneCLI-compatible API's credential): the SQL and the backend operations
//! (expanded inside each backend module); [`Store`](crate::Store)'s methods are in `apikeys.rs`.
//! The SQL runs unchanged on SQLite and PostgreSQL.

pub(crate) const ADD: &str = "INSERT INTO api_keys (name, key_hash, scopes, created_ms) VALUES ($1, $2, $3, $4)";
pub(crate) const LIST: &str = "SELECT name, key_hash, scopes, created_ms FROM api_keys ORDER BY name";
pub(crate) const BY_HASH: &str = "SELECT name, key_hash, scopes, created_ms FROM api_keys WHERE key_hash = $1";
pub(crate) const REMOVE: &str = "DELETE FROM api_keys WHERE name = $1";

/// The backend operations for API keys (after `store_ops!()`).
macro_rules! apikeys_ops {
    () => {
        fn api_key_row(row: &DbRow) -> Result<$crate::ApiKeyRow, StoreError> {
            let at = At::table("api_keys");
            let name = text(row, "name", at)?;
            let at = at.key(&name);
            Ok($crate::ApiKeyRow {
                key_hash: blob(row, "key_hash", at)?,
                scopes: text(row, "scopes", at)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                created_ms: int(row, "created_ms", at)?,
                name,
            })
        }

        pub(crate) async fn add_api_key(pool: &DbPool, k: &$crate::ApiKeyRow) -> Result<(), StoreError> {
            sqlx::query($crate::apikeys_ops::ADD)
                .bind(&k.name)
                .bind(&k.key_hash)
                .bind(k.scopes.join(","))
                .bind(k.created_ms)
                .execute(pool)
                .await
                .map_err(|e| err(e, || format!("api key {:?}", k.name)))?;
            Ok(())
        }

        pub(crate) async fn list_api_keys(pool: &DbPool) -> Result<Vec<$crate::ApiKeyRow>, StoreError> {
            let rows = sqlx::query($crate::apikeys_ops::LIST)
                .fetch_all(pool)
                .await
                .map_err(db)?;
            rows.iter().map(api_key_row).collect()
        }

        pub(crate) async fn api_key_by_hash(
            pool: &DbPool,
            hash: &[u8],
        ) -> Result<Option<$crate::ApiKeyRow>, StoreError> {
            let row = sqlx::query($crate::apikeys_ops::BY_HASH)
                .bind(hash)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            row.as_ref().map(api_key_row).transpose()
        }

        pub(crate) async fn remove_api_key(pool: &DbPool, name: &str) -> Result<bool, StoreError> {
            let r = sqlx::query($crate::apikeys_ops::REMOVE)
                .bind(name)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() > 0)
        }
    };
}

pub(crate) use apikeys_ops;
