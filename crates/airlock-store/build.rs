//! Re-embed the migrations (`sqlx::migrate!`) whenever a migration file changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
