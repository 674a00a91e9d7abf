//! The HTTP floor: a bare actix-web endpoint that answers 200, with the same worker count
//! as fleetca, so the benchmark shows what the machine and the load generator cost alone.
#![forbid(unsafe_code)]

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".into());
    HttpServer::new(|| {
        App::new().default_service(web::to(|_body: web::Bytes| async {
            HttpResponse::Ok().body("{\"ok\":true}")
        }))
    })
    .bind(listen)?
    .run()
    .await
}
