//! The one-command Bookinfo demo: every service, the ingress gateway, a DNS server and a
//! development CA on loopback, until Ctrl-C.
//!
//! ```text
//! bookinfo [--config FILE]... [--gateway ADDR] [--traffic]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bookinfo::demo::{Demo, DemoOptions, traffic};

const USAGE: &str = "\
usage: bookinfo [--config FILE]... [--gateway ADDR] [--traffic]

  --config FILE   a YAML file of Istio documents (VirtualService, DestinationRule ...)
                  applied to every workload; repeat it for several files, applied in
                  order (destination-rule-all.yaml before virtual-service-all-v1.yaml);
                  edits apply live (the files are read again every second)
  --gateway ADDR  where the ingress gateway listens (default 127.0.0.1:8080)
  --traffic       send steady traffic through the gateway (5 requests/s, alternating an
                  anonymous user and jason)
  --help          this message";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Args {
    config: Vec<PathBuf>,
    gateway: Option<SocketAddr>,
    traffic: bool,
    help: bool,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        config: Vec::new(),
        gateway: None,
        traffic: false,
        help: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--config" => parsed.config.push(PathBuf::from(value("--config")?)),
            "--gateway" => {
                let text = value("--gateway")?;
                let addr = text.parse().map_err(|_| {
                    format!("--gateway: `{text}` is not an address such as 127.0.0.1:8080")
                })?;
                parsed.gateway = Some(addr);
            }
            "--traffic" if inline.is_none() => parsed.traffic = true,
            "--help" | "-h" => parsed.help = true,
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bookinfo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let mut options = DemoOptions::default();
    options.config = args.config;
    if let Some(addr) = args.gateway {
        options.gateway_addr = addr;
    }
    let demo = match Demo::start(options).await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("bookinfo: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", demo.urls());
    println!("Ctrl-C stops.");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if args.traffic {
        let report = traffic::drive(demo.urls().gateway, 5, None, true, ctrl_c).await;
        println!(
            "traffic: {} requests, by status {:?}",
            report.total(),
            report.statuses
        );
    } else {
        ctrl_c.await;
    }
    demo.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_the_flags() {
        let parsed = args(&[
            "--config",
            "dr.yaml",
            "--config=vs.yaml",
            "--gateway=127.0.0.1:9000",
            "--traffic",
        ])
        .unwrap();
        assert_eq!(
            parsed.config,
            [PathBuf::from("dr.yaml"), PathBuf::from("vs.yaml")]
        );
        assert_eq!(parsed.gateway, Some("127.0.0.1:9000".parse().unwrap()));
        assert!(parsed.traffic);
        assert!(args(&["--gateway", "nope"]).is_err());
        assert!(args(&["--config"]).is_err());
        assert!(args(&["--what"]).is_err());
        assert!(args(&["--traffic=yes"]).is_err());
    }
}
