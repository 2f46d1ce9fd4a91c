//! `[otel]` and the standard variables: what turns export on and off,
//! what each variable sets, and the errors that name the key.

use super::*;

fn applied(pairs: &[(&str, &str)], overridden: &[&str]) -> Result<OtelConfig, EnvInvalid> {
    let vars: HashMap<&str, &str> = pairs.iter().copied().collect();
    let mut c = OtelConfig::default();
    c.apply_standard_env(&vars, &|k| overridden.contains(&k))?;
    Ok(c)
}

#[test]
fn the_traces_url_is_the_base_with_v1_traces_unless_given_whole() {
    let rows = [
        (
            "http://localhost:4318",
            "",
            "http://localhost:4318/v1/traces",
        ),
        ("http://c:4318/", "", "http://c:4318/v1/traces"),
        (
            "https://cloud.example/api/public/otel",
            "",
            "https://cloud.example/api/public/otel/v1/traces",
        ),
        ("http://c:4318", "http://d:9/custom", "http://d:9/custom"),
    ];
    for (endpoint, traces, want) in rows {
        let c = OtelConfig {
            endpoint: endpoint.into(),
            traces_endpoint: traces.into(),
            ..OtelConfig::default()
        };
        assert_eq!(c.traces_url(), want, "{endpoint} {traces}");
    }
}

#[test]
fn the_endpoint_variables_turn_export_on_and_the_off_switches_win() {
    assert!(!applied(&[], &[]).unwrap().enabled);
    let c = applied(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318")], &[]).unwrap();
    assert!(c.enabled);
    assert_eq!(c.traces_url(), "http://col:4318/v1/traces");
    let c = applied(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.traces_url(), "http://t:1/x");
    assert!(
        applied(&[("OTEL_TRACES_EXPORTER", "otlp")], &[])
            .unwrap()
            .enabled
    );
    for off in [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ] {
        let c = applied(
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), off],
            &[],
        );
        assert!(!c.unwrap().enabled, "{off:?}");
    }
    // BACKSTOP_OTEL__ENDPOINT wins over the standard variable.
    let c = applied(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318")],
        &["otel.endpoint"],
    )
    .unwrap();
    assert_eq!(c.endpoint, "http://localhost:4318");
}

#[test]
fn names_protocol_timeout_and_headers_come_from_the_variables() {
    let c = applied(
        &[
            ("OTEL_SERVICE_NAME", "gw-eu"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-a=1, Authorization=Basic%20abc%3D",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-a=2"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.service_name, "gw-eu");
    assert_eq!(c.protocol, "http/protobuf");
    assert_eq!(c.timeout_ms, 2500);
    let headers: Vec<(&str, &str)> = c
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(headers, [("authorization", "Basic abc="), ("x-a", "2")]);
}

#[test]
fn bad_variables_are_named_and_values_never_echoed() {
    let rows = [
        (
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            "expected milliseconds",
        ),
        (("OTEL_EXPORTER_OTLP_HEADERS", "sk-secret-1"), "entry 1"),
        (
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=%zzsk-secret-1"),
            "percent",
        ),
        (("OTEL_TRACES_EXPORTER", "zipkin"), "OTLP only"),
        (("OTEL_SDK_DISABLED", "maybe"), "true or false"),
    ];
    for ((var, value), fragment) in rows {
        let (at, _, message) = applied(&[(var, value)], &[]).unwrap_err();
        assert_eq!(at, var);
        assert!(message.contains(fragment), "{message}");
        assert!(!message.contains("sk-secret"), "{message}");
    }
}

#[test]
fn validation_names_the_key() {
    type Tweak = fn(&mut OtelConfig);
    let rows: [(Tweak, &str); 6] = [
        (|c| c.endpoint = "localhost:4318".into(), "otel.endpoint"),
        (
            |c| c.traces_endpoint = "ftp://x/".into(),
            "otel.traces_endpoint",
        ),
        (|c| c.protocol = "grpc".into(), "otel.protocol"),
        (|c| c.timeout_ms = 0, "otel.timeout_ms"),
        (|c| c.sample_ratio = 1.5, "otel.sample_ratio"),
        (
            |c| {
                c.headers.insert("bad name".into(), Secret::new("v"));
            },
            "otel.headers.bad name",
        ),
    ];
    for (tweak, key) in rows {
        let mut c = OtelConfig::default();
        tweak(&mut c);
        assert_eq!(c.validate().unwrap_err().0, key);
    }
    assert_eq!(OtelConfig::default().validate(), Ok(()));
}
