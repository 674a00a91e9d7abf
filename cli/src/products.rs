//! `fleetca products …`: products of the sign-based families and their devices.

use serde_json::{Value, json};

use super::api::{api, enc, put};
use super::output::{Column, Output};
use super::{CliError, ProductDevicesCommand, ProductsCommand};

const PRODUCT_COLUMNS: &[Column] = &[
    ("PRODUCT_KEY", "product_key"),
    ("NAME", "name"),
    ("SCHEME", "scheme"),
    ("ENTERPRISE", "enterprise"),
    ("DYNAMIC", "dynamic_activation"),
    ("ACTIVE", "is_active"),
];
const DEVICE_COLUMNS: &[Column] = &[
    ("PRODUCT_KEY", "product_key"),
    ("DEVICE_KEY", "device_key"),
    ("ACTIVE", "is_active"),
    ("ACTIVATED", "activated"),
    ("MQTT_USERNAME", "mqtt_username"),
];

fn product_path(product_key: &str) -> String {
    format!("/api/v4/manage/products/{}/", enc(product_key))
}

fn device_path(product_key: &str, device_key: &str) -> String {
    format!("{}devices/{}/", product_path(product_key), enc(device_key))
}

/// `columns` plus `extra` when the object carries that field (a secret shown once).
fn with(columns: &[Column], object: &Value, extra: Column) -> Vec<Column> {
    let mut all = columns.to_vec();
    if object.get(extra.1).is_some_and(Value::is_string) {
        all.push(extra);
    }
    all
}

/// A secret from a file (or standard input for `-`): its first line, trimmed.
fn read_secret(path: &std::path::Path) -> Result<String, CliError> {
    use std::io::Read;
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| CliError::Usage(format!("--secret-file {}: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(CliError::Usage(format!("--secret-file {}: empty", path.display())));
    }
    Ok(secret)
}

pub async fn run(cmd: ProductsCommand, out: Output) -> Result<(), CliError> {
    let api = api()?;
    match cmd {
        ProductsCommand::Create {
            name,
            scheme,
            product_key,
            enterprise,
            dynamic_activation,
            max_clock_skew,
            secret_file,
        } => {
            let mut body = json!({"name": name, "scheme": scheme, "dynamic_activation": dynamic_activation});
            if let Some(k) = product_key {
                put(&mut body, "product_key", json!(k));
            }
            if let Some(e) = enterprise {
                put(&mut body, "enterprise", json!(e));
            }
            if let Some(s) = max_clock_skew {
                put(&mut body, "max_clock_skew_seconds", json!(s));
            }
            if let Some(path) = &secret_file {
                put(&mut body, "product_secret", json!(read_secret(path)?));
            }
            let created = api.post("/api/v4/manage/products/", &body).await?;
            out.object(
                &created,
                &with(PRODUCT_COLUMNS, &created, ("PRODUCT_SECRET", "product_secret")),
            );
            if secret_file.is_none() {
                out.note("The product secret is shown only now: store it.");
            }
        }
        ProductsCommand::Import(a) => super::import::run_product_import(&api, a, out).await?,
        ProductsCommand::List {
            enterprise,
            scheme,
            search,
        } => {
            let mut path = "/api/v4/manage/products/?".to_owned();
            for (name, value) in [("enterprise", enterprise), ("scheme", scheme), ("search", search)] {
                if let Some(v) = value {
                    path.push_str(&format!("{name}={}&", enc(&v)));
                }
            }
            let path = path.trim_end_matches(['&', '?']).to_owned();
            out.table(&api.list_all(&path).await?, PRODUCT_COLUMNS);
        }
        ProductsCommand::Show { product_key } => {
            out.object(&api.get(&product_path(&product_key)).await?, PRODUCT_COLUMNS);
        }
        ProductsCommand::Disable { product_key } => {
            let p = api
                .patch(&product_path(&product_key), &json!({"is_active": false}))
                .await?;
            out.object(&p, PRODUCT_COLUMNS);
        }
        ProductsCommand::Enable { product_key } => {
            let p = api
                .patch(&product_path(&product_key), &json!({"is_active": true}))
                .await?;
            out.object(&p, PRODUCT_COLUMNS);
        }
        ProductsCommand::RotateSecret { product_key } => {
            let rotated = api
                .post(&format!("{}rotate-secret/", product_path(&product_key)), &json!({}))
                .await?;
            out.object(
                &rotated,
                &with(PRODUCT_COLUMNS, &rotated, ("PRODUCT_SECRET", "product_secret")),
            );
            out.note("The new product secret is shown only now; the old one no longer works.");
        }
        ProductsCommand::Delete { product_key } => {
            api.delete(&product_path(&product_key)).await?;
            out.note(&format!("deleted product {product_key}"));
            if out.json {
                out.object(&json!({"product_key": product_key, "deleted": true}), &[]);
            }
        }
        ProductsCommand::Devices(d) => devices(&api, d, out).await?,
    }
    Ok(())
}

async fn devices(api: &super::api::Api, cmd: ProductDevicesCommand, out: Output) -> Result<(), CliError> {
    match cmd {
        ProductDevicesCommand::Create {
            device_key,
            product,
            secret,
            description,
        } => {
            let mut body = json!({"device_key": device_key});
            if let Some(s) = secret {
                put(&mut body, "device_secret", json!(s));
            }
            if let Some(d) = description {
                put(&mut body, "description", json!(d));
            }
            let created = api.post(&format!("{}devices/", product_path(&product)), &body).await?;
            out.object(
                &created,
                &with(DEVICE_COLUMNS, &created, ("DEVICE_SECRET", "device_secret")),
            );
        }
        ProductDevicesCommand::List { product, search } => {
            let mut path = format!("{}devices/", product_path(&product));
            if let Some(s) = search {
                path.push_str(&format!("?search={}", enc(&s)));
            }
            out.table(&api.list_all(&path).await?, DEVICE_COLUMNS);
        }
        ProductDevicesCommand::Show { device_key, product } => {
            out.object(&api.get(&device_path(&product, &device_key)).await?, DEVICE_COLUMNS);
        }
        ProductDevicesCommand::Disable { device_key, product } => {
            let d = api
                .patch(&device_path(&product, &device_key), &json!({"is_active": false}))
                .await?;
            out.object(&d, DEVICE_COLUMNS);
        }
        ProductDevicesCommand::Enable { device_key, product } => {
            let d = api
                .patch(&device_path(&product, &device_key), &json!({"is_active": true}))
                .await?;
            out.object(&d, DEVICE_COLUMNS);
        }
        ProductDevicesCommand::RotateSecret { device_key, product } => {
            let d = api
                .post(
                    &format!("{}rotate-secret/", device_path(&product, &device_key)),
                    &json!({}),
                )
                .await?;
            out.object(&d, &with(DEVICE_COLUMNS, &d, ("DEVICE_SECRET", "device_secret")));
            out.note("The new device secret is shown only now; the old one no longer works.");
        }
        ProductDevicesCommand::ResetActivation { device_key, product } => {
            let d = api
                .post(
                    &format!("{}reset-activation/", device_path(&product, &device_key)),
                    &json!({}),
                )
                .await?;
            out.object(&d, DEVICE_COLUMNS);
        }
        ProductDevicesCommand::Delete { device_key, product } => {
            api.delete(&device_path(&product, &device_key)).await?;
            out.note(&format!("deleted {product}/{device_key}"));
            if out.json {
                out.object(
                    &json!({"product_key": product, "device_key": device_key, "deleted": true}),
                    &[],
                );
            }
        }
        ProductDevicesCommand::Import(a) => super::import::run_products(api, a, out).await?,
    }
    Ok(())
}
