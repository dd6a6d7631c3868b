//! OTLP export from the standard `OTEL_*` variables: an SDK tracer provider with a batch
//! OTLP/gRPC exporter, installed as the global provider.
//!
//! | variable | read by | meaning |
//! |---|---|---|
//! | `OTEL_SDK_DISABLED` | mesh | `true`: no provider at all |
//! | `OTEL_TRACES_EXPORTER` | mesh | `otlp` (default) or `none`; others are an error |
//! | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | mesh | `grpc` only (the HTTP exporters are not built in) |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` | mesh | the collector, `http://localhost:4317` by default |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | mesh | the resource; `service.name` falls back to the name given |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | mesh | the sampler (`parentbased_always_on` by default) |
//! | `OTEL_BSP_SCHEDULE_DELAY` | mesh and the SDK | batch export interval (ms) |
//! | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_EXPORT_TIMEOUT` | the SDK | the batch processor |
//! | `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`, `_HEADERS`, `_COMPRESSION`, `_INSECURE` | the exporter | per-export timeout (10 s), metadata, compression, plaintext |
//!
//! The batch processor exports on a thread of its own; the gRPC channel runs on the tokio
//! runtime the provider is built in, so build it inside one (and on a current-thread runtime
//! flush or shut down with [`TracingGuard::shutdown`] or from `spawn_blocking`, not by a
//! blocking call on the runtime's own thread).

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};

/// The default OTLP/gRPC collector.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4317";

/// Why tracing cannot be set up from the environment.
#[derive(Debug, thiserror::Error)]
pub enum TraceInitError {
    /// A variable has a value that cannot be used.
    #[error("{variable}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Not called inside a tokio runtime, which the gRPC exporter needs.
    #[error("OTLP/gRPC tracing needs a tokio runtime: call inside one")]
    NoRuntime,
    /// The exporter cannot be built.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

fn invalid(variable: &'static str, value: &str, reason: &'static str) -> TraceInitError {
    TraceInitError::Invalid {
        variable,
        value: value.to_owned(),
        reason,
    }
}

/// Sets up OTLP tracing from the process environment (see the
/// [module documentation](crate::telemetry::trace)) and installs the provider as OpenTelemetry's global one, which [`Tracer::global`]
/// (the default of every [`Telemetry`](crate::telemetry::Telemetry)) uses at once.
/// `service_name` is the `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
/// name one. `Ok(None)` when `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
///
/// Keep the guard for the life of the program: dropping it flushes and shuts the provider
/// down (see [`TracingGuard`]).
///
/// [`Tracer::global`]: super::Tracer::global
pub fn init_from_env(service_name: &str) -> Result<Option<TracingGuard>, TraceInitError> {
    let Some(provider) = provider_with_env(service_name, |name| std::env::var(name).ok())? else {
        return Ok(None);
    };
    opentelemetry::global::set_tracer_provider(provider.clone());
    super::tracer::reset_global_probe();
    Ok(Some(TracingGuard {
        provider: Some(provider),
    }))
}

/// Builds the provider [`init_from_env`] would, reading mesh's variables through `env`
/// instead of the process environment, without installing it: for a process running several
/// workloads (give each its `service_name` and a [`Tracer::sdk`](super::Tracer::sdk) of it),
/// and for tests. The exporter's own variables (timeout, headers, compression) are still read
/// from the process environment.
pub fn provider_with_env(
    service_name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<SdkTracerProvider>, TraceInitError> {
    let get = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(v) = get("OTEL_SDK_DISABLED") {
        match v.to_ascii_lowercase().as_str() {
            "true" => return Ok(None),
            "false" => {}
            _ => return Err(invalid("OTEL_SDK_DISABLED", &v, "expected true or false")),
        }
    }
    if let Some(v) = get("OTEL_TRACES_EXPORTER") {
        let names: Vec<&str> = v.split(',').map(str::trim).collect();
        if names.iter().all(|n| *n == "none") {
            return Ok(None);
        }
        if names.iter().any(|n| *n != "otlp" && *n != "none") {
            return Err(invalid(
                "OTEL_TRACES_EXPORTER",
                &v,
                "only otlp (or none) is supported",
            ));
        }
    }
    for variable in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(v) = get(variable) {
            if v != "grpc" {
                return Err(invalid(
                    variable,
                    &v,
                    "only grpc is built in (http/protobuf and http/json are not)",
                ));
            }
            break;
        }
    }
    let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let sampler = sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?;
    let resource = resource(
        service_name,
        get("OTEL_SERVICE_NAME"),
        get("OTEL_RESOURCE_ATTRIBUTES"),
    )?;
    let mut batch = BatchConfigBuilder::default();
    if let Some(v) = get("OTEL_BSP_SCHEDULE_DELAY") {
        let ms = v
            .parse::<u64>()
            .map_err(|_| invalid("OTEL_BSP_SCHEDULE_DELAY", &v, "expected milliseconds"))?;
        batch = batch.with_scheduled_delay(Duration::from_millis(ms));
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TraceInitError::NoRuntime);
    }
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(resource)
            .build(),
    ))
}

/// The sampler of `OTEL_TRACES_SAMPLER` and its argument (as the specification names them).
fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, TraceInitError> {
    let ratio = || -> Result<f64, TraceInitError> {
        match &arg {
            None => Ok(1.0),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    invalid("OTEL_TRACES_SAMPLER_ARG", v, "expected a ratio from 0 to 1")
                }),
        }
    };
    let Some(name) = name else {
        return Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    };
    Ok(match name.as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        _ => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                &name,
                "expected always_on, always_off, traceidratio or their parentbased_ forms",
            ));
        }
    })
}

/// The resource: the SDK's own attributes, `OTEL_RESOURCE_ATTRIBUTES`, and `service.name`
/// from `OTEL_SERVICE_NAME`, else the attributes, else `fallback`.
fn resource(
    fallback: &str,
    service_name: Option<String>,
    attributes: Option<String>,
) -> Result<Resource, TraceInitError> {
    let mut attrs = Vec::new();
    let mut named = None;
    if let Some(list) = &attributes {
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    invalid("OTEL_RESOURCE_ATTRIBUTES", list, "expected key=value,...")
                })?;
            let value = percent_decode(value).ok_or_else(|| {
                invalid(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    list,
                    "malformed percent-encoding",
                )
            })?;
            if key == "service.name" {
                named = Some(value);
            } else {
                attrs.push(KeyValue::new(key.to_owned(), value));
            }
        }
    }
    let name = service_name
        .or(named)
        .unwrap_or_else(|| fallback.to_owned());
    Ok(Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attrs)
        .with_service_name(name)
        .build())
}

/// Decodes `%XX` escapes (as `OTEL_RESOURCE_ATTRIBUTES` values use); `None` when malformed.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Keeps the provider [`init_from_env`] installed; flush with [`force_flush`](Self::force_flush),
/// end with [`shutdown`](Self::shutdown).
///
/// Dropping it shuts the provider down (exporting what is left) when that cannot deadlock:
/// outside a runtime, or on a multi-thread runtime (with `block_in_place`). On a
/// current-thread runtime the export needs the very thread that would block, so the shutdown
/// runs on a thread of its own, not waited for: call `shutdown().await` instead.
#[derive(Debug)]
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl TracingGuard {
    /// The installed provider (for tracers of your own).
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Exports every finished span now.
    pub async fn force_flush(&self) -> OTelSdkResult {
        let Some(provider) = self.provider.clone() else {
            return Ok(());
        };
        blocking(move || provider.force_flush()).await
    }

    /// Exports what is left and shuts the provider down.
    pub async fn shutdown(mut self) -> OTelSdkResult {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        blocking(move || provider.shutdown()).await
    }
}

/// Runs a blocking SDK call off the runtime's threads.
async fn blocking(f: impl FnOnce() -> OTelSdkResult + Send + 'static) -> OTelSdkResult {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
            e.to_string(),
        ))
    })
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        let result = match tokio::runtime::Handle::try_current() {
            Err(_) => provider.shutdown(),
            Ok(handle) => match handle.runtime_flavor() {
                tokio::runtime::RuntimeFlavor::CurrentThread => {
                    std::thread::spawn(move || provider.shutdown());
                    Ok(())
                }
                _ => tokio::task::block_in_place(|| provider.shutdown()),
            },
        };
        if let Err(error) = result {
            tracing::warn!(%error, "tracer provider shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Value;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn disabled_and_none_build_nothing() {
        for pairs in [
            [("OTEL_SDK_DISABLED", "TRUE")],
            [("OTEL_TRACES_EXPORTER", "none")],
        ] {
            assert!(provider_with_env("x", env(&pairs)).unwrap().is_none());
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("OTEL_SDK_DISABLED", "maybe"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_SAMPLER", "xray"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ] {
            let err = provider_with_env("x", env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
        let err = provider_with_env(
            "x",
            env(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("OTEL_TRACES_SAMPLER_ARG"));
    }

    #[test]
    fn needs_a_runtime() {
        assert!(matches!(
            provider_with_env("x", env(&[])),
            Err(TraceInitError::NoRuntime)
        ));
    }

    #[test]
    fn service_name_precedence() {
        let name = |r: &Resource| r.get(&"service.name".into());
        let r = resource("given", None, Some("a=1,service.name=attr%20x".into())).unwrap();
        assert_eq!(name(&r), Some(Value::from("attr x")));
        assert_eq!(r.get(&"a".into()), Some(Value::from("1")));
        let r = resource(
            "given",
            Some("env".into()),
            Some("service.name=attr".into()),
        )
        .unwrap();
        assert_eq!(name(&r), Some(Value::from("env")));
        let r = resource("given", None, None).unwrap();
        assert_eq!(name(&r), Some(Value::from("given")));
        assert!(resource("g", None, Some("a=%zz".into())).is_err());
    }

    #[test]
    fn samplers() {
        assert!(matches!(
            sampler(None, None).unwrap(),
            Sampler::ParentBased(_)
        ));
        assert!(matches!(
            sampler(Some("traceidratio".into()), Some("0.25".into())).unwrap(),
            Sampler::TraceIdRatioBased(r) if r == 0.25
        ));
        assert!(matches!(
            sampler(Some("always_off".into()), None).unwrap(),
            Sampler::AlwaysOff
        ));
    }
}
