use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::OutlierDetection;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const E500: Observation = Observation::Status(500);
const E503: Observation = Observation::Status(503);
const OK: Observation = Observation::Status(200);
const CONNECT: Observation = Observation::LocalOrigin(LocalFailure::ConnectFailure);
const TIMEOUT: Observation = Observation::LocalOrigin(LocalFailure::Timeout);

/// A detector and `n` endpoints.
fn setup(settings: OutlierSettings, n: usize) -> (OutlierDetector, Vec<EndpointOutlier>) {
    let detector = OutlierDetector::new(settings);
    let endpoints = (0..n).map(|_| detector.new_endpoint()).collect();
    (detector, endpoints)
}

/// Observes `obs` `times` times on endpoint `i` at `now`, passing thresholds to the detector;
/// the reasons reported, and whether each led to an ejection.
fn feed(
    d: &OutlierDetector,
    eps: &[EndpointOutlier],
    i: usize,
    obs: Observation,
    times: usize,
    now: Duration,
) -> Vec<(EjectReason, bool)> {
    let mut out = Vec::new();
    for _ in 0..times {
        if let Some(reason) = eps[i].observe(obs, now) {
            out.push((reason, d.on_threshold(&eps[i], reason, now, eps)));
        }
    }
    out
}

fn percent(pct: u32) -> OutlierSettings {
    OutlierSettings::from(&OutlierDetection {
        max_ejection_percent: Some(pct),
        ..Default::default()
    })
}

#[test]
fn settings_take_istio_defaults() {
    let s = OutlierSettings::default();
    assert_eq!(s.consecutive_5xx, 5);
    assert_eq!(s.consecutive_gateway, 0);
    assert_eq!(s.consecutive_local_origin, 5);
    assert!(!s.split_local_origin);
    assert_eq!(s.interval, secs(10));
    assert_eq!(s.base_ejection_time, secs(30));
    assert_eq!(s.max_ejection_time, secs(300));
    assert_eq!(s.max_ejection_percent, 10);
    assert_eq!(s.min_health_percent, 0);
    assert_eq!(s.success_rate, None);
    assert!(s.probation);
}

#[test]
fn settings_take_configured_values() {
    let s = OutlierSettings::from(&OutlierDetection {
        consecutive_5xx_errors: Some(0),
        consecutive_gateway_errors: Some(3),
        consecutive_local_origin_failures: Some(2),
        split_external_local_origin_errors: true,
        interval: Some(secs(1)),
        base_ejection_time: Some(secs(400)),
        max_ejection_percent: Some(250),
        min_health_percent: Some(50),
        success_rate: None,
    });
    assert_eq!(s.consecutive_5xx, 0);
    assert_eq!(s.consecutive_gateway, 3);
    assert_eq!(s.consecutive_local_origin, 2);
    assert!(s.split_local_origin);
    assert_eq!(s.interval, secs(1));
    assert_eq!(s.base_ejection_time, secs(400));
    // The cap is never below the base time.
    assert_eq!(s.max_ejection_time, secs(400));
    assert_eq!(s.ejection_time(3), secs(400));
    assert_eq!(s.max_ejection_percent, 100);
    assert_eq!(s.min_health_percent, 50);
    // Zero times fall back to the defaults.
    let z = OutlierSettings::from(&OutlierDetection {
        interval: Some(Duration::ZERO),
        base_ejection_time: Some(Duration::ZERO),
        ..Default::default()
    });
    assert_eq!((z.interval, z.base_ejection_time), (secs(10), secs(30)));
}

#[test]
fn success_rate_defaults_are_envoys() {
    let sr = SuccessRate::default();
    assert_eq!(sr.request_volume, 100);
    assert_eq!(
        sr.mode,
        SuccessRateMode::Stdev {
            minimum_hosts: 5,
            factor: 1900
        }
    );
    assert_eq!(
        SuccessRate::threshold(150).mode,
        SuccessRateMode::Threshold {
            min_success_percent: 100
        }
    );
}

#[test]
fn five_consecutive_500s_eject() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    assert!(feed(&d, &eps, 0, E500, 4, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_5xx(), 4);
    assert!(!eps[0].is_ejected(secs(1)));
    assert_eq!(
        feed(&d, &eps, 0, E500, 1, secs(1)),
        vec![(EjectReason::Consecutive5xx, true)]
    );
    assert!(eps[0].is_ejected(secs(1)));
    assert!(eps[0].is_ejected(secs(30) + secs(1) - Duration::from_nanos(1)));
    assert!(!eps[0].is_ejected(secs(31)));
    assert_eq!(eps[0].ejected_until(), Some(secs(31)));
    assert_eq!(eps[0].ejections(), 1);
    assert_eq!(d.ejections_total(), 1);
}

#[test]
fn a_success_in_between_resets() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    for ok in [OK, Observation::Success, Observation::Status(404)] {
        assert!(feed(&d, &eps, 0, E500, 4, secs(1)).is_empty());
        assert!(feed(&d, &eps, 0, ok, 1, secs(1)).is_empty());
        assert_eq!(eps[0].consecutive_5xx(), 0);
    }
    assert!(feed(&d, &eps, 0, E500, 4, secs(1)).is_empty());
    assert!(!eps[0].is_ejected(secs(1)));
}

#[test]
fn disabled_5xx_counts_nothing() {
    let s = OutlierSettings::from(&OutlierDetection {
        consecutive_5xx_errors: Some(0),
        ..Default::default()
    });
    let (d, eps) = setup(s, 1);
    assert!(feed(&d, &eps, 0, E500, 100, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_5xx(), 0);
}

#[test]
fn gateway_errors_count_only_when_configured() {
    let gateway_only = OutlierSettings::from(&OutlierDetection {
        consecutive_5xx_errors: Some(0),
        consecutive_gateway_errors: Some(3),
        ..Default::default()
    });
    let (d, eps) = setup(gateway_only, 1);
    // 500 is not a gateway error and breaks a run of them.
    assert!(feed(&d, &eps, 0, Observation::Status(502), 2, secs(1)).is_empty());
    assert!(feed(&d, &eps, 0, E500, 1, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_gateway(), 0);
    assert!(feed(&d, &eps, 0, Observation::Status(502), 1, secs(1)).is_empty());
    assert!(feed(&d, &eps, 0, Observation::Status(504), 1, secs(1)).is_empty());
    assert_eq!(
        feed(&d, &eps, 0, E503, 1, secs(1)),
        vec![(EjectReason::ConsecutiveGateway, true)]
    );

    // Not configured: gateway errors count as 5xx only.
    let (d, eps) = setup(OutlierSettings::default(), 1);
    assert!(feed(&d, &eps, 0, E503, 4, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_gateway(), 0);
    assert_eq!(
        feed(&d, &eps, 0, E503, 1, secs(1)),
        vec![(EjectReason::Consecutive5xx, true)]
    );
}

#[test]
fn local_origin_failures_count_as_5xx_unless_split() {
    // Not split: connect failures and timeouts are 503/504 answers.
    let s = OutlierSettings::from(&OutlierDetection {
        consecutive_gateway_errors: Some(2),
        ..Default::default()
    });
    let (d, eps) = setup(s, 1);
    assert!(feed(&d, &eps, 0, CONNECT, 1, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_5xx(), 1);
    assert_eq!(eps[0].consecutive_local_origin(), 0);
    assert_eq!(
        feed(&d, &eps, 0, TIMEOUT, 1, secs(1)),
        vec![(EjectReason::ConsecutiveGateway, true)]
    );

    let (d, eps) = setup(OutlierSettings::default(), 1);
    feed(&d, &eps, 0, E500, 2, secs(1));
    assert_eq!(
        feed(&d, &eps, 0, CONNECT, 3, secs(1)),
        vec![(EjectReason::Consecutive5xx, true)]
    );
}

#[test]
fn split_local_origin_failures_have_their_own_counter() {
    let s = OutlierSettings::from(&OutlierDetection {
        consecutive_local_origin_failures: Some(3),
        split_external_local_origin_errors: true,
        ..Default::default()
    });
    let (d, eps) = setup(s, 1);
    let reset = Observation::LocalOrigin(LocalFailure::Reset);
    assert!(feed(&d, &eps, 0, reset, 2, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_5xx(), 0);
    assert_eq!(eps[0].consecutive_local_origin(), 2);
    // An answer, even a 5xx, means the connection worked: the local-origin run ends.
    assert!(feed(&d, &eps, 0, E500, 1, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_local_origin(), 0);
    assert_eq!(eps[0].consecutive_5xx(), 1);
    // Local-origin failures do not break a 5xx run either.
    assert!(feed(&d, &eps, 0, CONNECT, 2, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_5xx(), 1);
    assert_eq!(
        feed(&d, &eps, 0, TIMEOUT, 1, secs(1)),
        vec![(EjectReason::ConsecutiveLocalOrigin, true)]
    );

    // 0 disables the local-origin detector.
    let s = OutlierSettings::from(&OutlierDetection {
        consecutive_local_origin_failures: Some(0),
        split_external_local_origin_errors: true,
        ..Default::default()
    });
    let (d, eps) = setup(s, 1);
    assert!(feed(&d, &eps, 0, CONNECT, 50, secs(1)).is_empty());
}

#[test]
fn threshold_reports_once_then_counts_again() {
    // maxEjectionPercent refuses the second endpoint; its counter starts over.
    let (d, eps) = setup(OutlierSettings::default(), 2);
    assert_eq!(feed(&d, &eps, 0, E500, 5, secs(1)).len(), 1);
    assert_eq!(
        feed(&d, &eps, 1, E500, 5, secs(1)),
        vec![(EjectReason::Consecutive5xx, false)]
    );
    assert_eq!(eps[1].consecutive_5xx(), 0);
    assert!(feed(&d, &eps, 1, E500, 4, secs(1)).is_empty());
    assert_eq!(feed(&d, &eps, 1, E500, 1, secs(1)).len(), 1);
}

#[test]
fn observations_while_ejected_are_ignored() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    feed(&d, &eps, 0, E500, 5, secs(0));
    assert!(feed(&d, &eps, 0, E500, 20, secs(1)).is_empty());
    assert_eq!(eps[0].consecutive_5xx(), 0);
    assert!(!d.on_threshold(&eps[0], EjectReason::Consecutive5xx, secs(1), &eps));
    assert_eq!(eps[0].ejected_until(), Some(secs(30)));
}

/// Ejects endpoint 0 at `now` with five 500s; its ejection end.
fn eject_now(d: &OutlierDetector, eps: &[EndpointOutlier], now: Duration) -> Duration {
    assert_eq!(feed(d, eps, 0, E500, 5, now).len(), 1);
    assert!(eps[0].is_ejected(now));
    eps[0].ejected_until().unwrap()
}

#[test]
fn ejection_time_multiplies_and_caps() {
    let s = OutlierSettings {
        probation: false,
        ..Default::default()
    };
    assert_eq!(s.ejection_time(0), secs(30));
    assert_eq!(s.ejection_time(1), secs(30));
    assert_eq!(s.ejection_time(4), secs(120));
    assert_eq!(s.ejection_time(10), secs(300));
    assert_eq!(s.ejection_time(u32::MAX), secs(300));

    let (d, eps) = setup(s, 1);
    let mut now = secs(0);
    let mut times = Vec::new();
    for _ in 0..12 {
        let until = eject_now(&d, &eps, now);
        times.push((until - now).as_secs());
        // Returned at the sweep right at its end; it fails again at once.
        now = until;
        assert_eq!(d.sweep(now, &eps).returned, vec![0]);
    }
    assert_eq!(
        times,
        vec![30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300]
    );
    // The multiplier stops where the cap is reached, so it decays quickly.
    assert_eq!(eps[0].ejections(), 10);
}

#[test]
fn returns_after_its_time_via_sweep() {
    let (d, eps) = setup(OutlierSettings::default(), 3);
    eject_now(&d, &eps, secs(5));
    for t in [10, 20, 30] {
        let report = d.sweep(secs(t), &eps);
        assert!(report.returned.is_empty(), "{t}: {report:?}");
        assert!(eps[0].is_ejected(secs(t)));
    }
    // The ejection ends at 35 s exactly; the sweep at 40 s reports it once.
    assert!(!eps[0].is_ejected(secs(35)));
    assert_eq!(d.sweep(secs(40), &eps).returned, vec![0]);
    assert_eq!(eps[0].ejected_until(), None);
    assert!(eps[0].on_probation());
    assert!(d.sweep(secs(50), &eps).returned.is_empty());
}

#[test]
fn probation_failure_ejects_again_for_longer() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    let until = eject_now(&d, &eps, secs(0));
    assert_eq!(until, secs(30));
    // Back at 30 s (before any sweep): its first request fails.
    assert_eq!(
        feed(&d, &eps, 0, CONNECT, 1, secs(30)),
        vec![(EjectReason::Probation, true)]
    );
    assert_eq!(eps[0].ejected_until(), Some(secs(90)));
    assert_eq!(eps[0].ejections(), 2);
    // Returned through a sweep this time, it fails again: 90 s.
    assert_eq!(d.sweep(secs(90), &eps).returned, vec![0]);
    assert_eq!(
        feed(&d, &eps, 0, E500, 1, secs(95)),
        vec![(EjectReason::Probation, true)]
    );
    assert_eq!(eps[0].ejected_until(), Some(secs(95 + 90)));
    // A success ends probation: failures need the full threshold again.
    assert_eq!(d.sweep(secs(185), &eps).returned, vec![0]);
    assert!(feed(&d, &eps, 0, OK, 1, secs(185)).is_empty());
    assert!(!eps[0].on_probation());
    assert!(feed(&d, &eps, 0, E500, 4, secs(186)).is_empty());
    assert!(!eps[0].is_ejected(secs(186)));
}

#[test]
fn without_probation_a_returned_endpoint_needs_the_full_threshold() {
    let s = OutlierSettings {
        probation: false,
        ..Default::default()
    };
    let (d, eps) = setup(s, 1);
    // Four failures before the ejection are forgotten (Envoy resets the counters).
    feed(&d, &eps, 0, E500, 5, secs(0));
    assert!(!eps[0].on_probation());
    assert_eq!(d.sweep(secs(30), &eps).returned, vec![0]);
    assert!(feed(&d, &eps, 0, E500, 4, secs(31)).is_empty());
    assert_eq!(
        feed(&d, &eps, 0, E500, 1, secs(31)),
        vec![(EjectReason::Consecutive5xx, true)]
    );
    assert_eq!(eps[0].ejected_until(), Some(secs(31 + 60)));
}

#[test]
fn probation_report_lost_to_a_concurrent_ejection_is_kept() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    eject_now(&d, &eps, secs(0));
    // A probation report arriving while the endpoint is ejected changes nothing.
    assert!(!d.on_threshold(&eps[0], EjectReason::Probation, secs(1), &eps));
    assert!(eps[0].on_probation());
}

#[test]
fn multiplier_decays_when_healthy() {
    let s = OutlierSettings {
        probation: false,
        ..Default::default()
    };
    let (d, eps) = setup(s, 1);
    eject_now(&d, &eps, secs(0));
    d.sweep(secs(30), &eps);
    eject_now(&d, &eps, secs(30));
    assert_eq!(eps[0].ejections(), 2);
    // The sweep that returns it does not count as a healthy interval.
    assert_eq!(d.sweep(secs(90), &eps).returned, vec![0]);
    assert_eq!(eps[0].ejections(), 2);
    d.sweep(secs(100), &eps);
    assert_eq!(eps[0].ejections(), 1);
    // Ejected now, it gets 60 s (multiplier 2) rather than 90 s.
    assert_eq!(eject_now(&d, &eps, secs(101)), secs(161));
    d.sweep(secs(161), &eps);
    d.sweep(secs(171), &eps);
    d.sweep(secs(181), &eps);
    d.sweep(secs(191), &eps);
    assert_eq!(eps[0].ejections(), 0);
    assert_eq!(eject_now(&d, &eps, secs(200)), secs(230));
}

#[test]
fn multiplier_does_not_decay_on_probation() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    eject_now(&d, &eps, secs(0));
    for t in [30, 40, 50, 60] {
        d.sweep(secs(t), &eps);
    }
    assert!(eps[0].on_probation());
    assert_eq!(eps[0].ejections(), 1);
    // Its first answer fails: ejected for 60 s.
    assert_eq!(
        feed(&d, &eps, 0, E500, 1, secs(61)),
        vec![(EjectReason::Probation, true)]
    );
    assert_eq!(eps[0].ejected_until(), Some(secs(121)));
}

#[test]
fn max_ejection_percent_is_enforced() {
    // 10 % of 25 is 2.
    let (d, eps) = setup(OutlierSettings::default(), 25);
    let ejected: Vec<bool> = (0..25)
        .map(|i| feed(&d, &eps, i, E500, 5, secs(1))[0].1)
        .collect();
    assert_eq!(ejected.iter().filter(|e| **e).count(), 2);
    assert!(ejected[0] && ejected[1]);
    // When they return, others may go.
    assert_eq!(d.sweep(secs(31), &eps).returned, vec![0, 1]);
    assert!(feed(&d, &eps, 5, E500, 5, secs(32))[0].1);
    assert!(feed(&d, &eps, 6, E500, 5, secs(32))[0].1);
    assert!(!feed(&d, &eps, 7, E500, 5, secs(32))[0].1);
}

#[test]
fn max_ejected_rounds_down_but_allows_one() {
    assert_eq!(max_ejected(3, 10), 1);
    assert_eq!(max_ejected(9, 10), 1);
    assert_eq!(max_ejected(20, 10), 2);
    assert_eq!(max_ejected(29, 10), 2);
    assert_eq!(max_ejected(10, 0), 1);
    assert_eq!(max_ejected(4, 100), 4);
    assert_eq!(max_ejected(4, 1000), 4);
    assert_eq!(max_ejected(0, 50), 1);
    assert!(ejection_allowed(5, 0, 0));
    assert!(!ejection_allowed(5, 1, 0));
    assert!(ejection_allowed(4, 1, 50));
    assert!(!ejection_allowed(4, 2, 50));
    assert!(ejection_allowed(usize::MAX, usize::MAX - 1, 100));
}

#[test]
fn panic_mode_threshold() {
    assert!(healthy_enough(10, 10, 0));
    assert!(healthy_enough(0, 0, 100));
    assert!(healthy_enough(10, 5, 50));
    assert!(!healthy_enough(10, 6, 50));
    assert!(healthy_enough(3, 1, 66));
    assert!(!healthy_enough(3, 1, 67));
    assert!(healthy_enough(10, 0, 100));
    assert!(!healthy_enough(10, 1, 100));
    assert!(healthy_enough(usize::MAX, 0, 100));
    let s = OutlierSettings {
        min_health_percent: 50,
        ..percent(100)
    };
    let (d, eps) = setup(s, 4);
    for i in 0..3 {
        feed(&d, &eps, i, E500, 5, secs(1));
    }
    let ejected = eps.iter().filter(|e| e.is_ejected(secs(1))).count();
    assert_eq!(ejected, 3);
    assert!(!d.healthy_enough(eps.len(), ejected));
    assert!(d.healthy_enough(eps.len(), 2));
}

#[test]
fn below_min_health_ejected_endpoints_are_not_excluded() {
    let s = OutlierSettings {
        min_health_percent: 50,
        ..percent(100)
    };
    let (d, eps) = setup(s, 4);
    for i in 0..2 {
        feed(&d, &eps, i, E500, 5, secs(1));
    }
    // Two of four healthy: 50 % is enough, ejections are honoured.
    assert!(!d.in_panic());
    assert!(eps[0].is_excluded(secs(1)) && eps[1].is_excluded(secs(1)));
    feed(&d, &eps, 2, E500, 5, secs(1));
    // One of four: panic, everyone takes traffic though three are still ejected.
    assert!(d.in_panic());
    assert!(eps.iter().all(|e| !e.is_excluded(secs(1))));
    assert!(eps[2].is_ejected(secs(1)));
    // All return after 30 s; the sweep ends panic mode.
    d.sweep(secs(40), &eps);
    assert!(!d.in_panic());
}

#[test]
fn without_min_health_there_is_no_panic() {
    let (d, eps) = setup(percent(100), 2);
    feed(&d, &eps, 0, E500, 5, secs(1));
    feed(&d, &eps, 1, E500, 5, secs(1));
    assert!(!d.in_panic());
    assert!(eps.iter().all(|e| e.is_excluded(secs(1))));
}

/// `n` endpoints with success-rate detection only; endpoint `i` answered `requests[i]`
/// requests of which `failures[i]` failed.
fn success_rate_run(sr: SuccessRate, pct: u32, requests: &[u32], failures: &[u32]) -> SweepReport {
    let s = OutlierSettings {
        consecutive_5xx: 0,
        ..percent(pct)
    }
    .with_success_rate(sr);
    let (d, eps) = setup(s, requests.len());
    for (i, (&r, &f)) in requests.iter().zip(failures).enumerate() {
        for k in 0..r {
            let obs = if k < f { E500 } else { OK };
            assert_eq!(eps[i].observe(obs, secs(1)), None);
        }
    }
    let report = d.sweep(secs(10), &eps);
    for &i in &report.ejected {
        assert!(eps[i].is_ejected(secs(10)));
        assert_eq!(eps[i].ejected_until(), Some(secs(40)));
    }
    // The counts restart each interval.
    assert!(d.sweep(secs(20), &eps).ejected.is_empty());
    report
}

#[test]
fn success_rate_stdev_mode_ejects_the_outlier() {
    let sr = SuccessRate::stdev();
    let report = success_rate_run(sr.clone(), 100, &[100; 6], &[0, 1, 0, 2, 50, 1]);
    assert_eq!(report.ejected, vec![4]);
    // All alike: nobody is below the mean.
    let report = success_rate_run(sr.clone(), 100, &[100; 6], &[10; 6]);
    assert!(report.ejected.is_empty());
    // Fewer than five judged endpoints: no decision.
    let report = success_rate_run(sr, 100, &[100; 4], &[0, 0, 0, 90]);
    assert!(report.ejected.is_empty());
}

#[test]
fn success_rate_needs_the_request_volume() {
    let sr = SuccessRate::stdev();
    // The bad endpoint answered 99 requests: it is not judged, and only five are left...
    let report = success_rate_run(
        sr.clone(),
        100,
        &[100, 100, 100, 100, 100, 99],
        &[0, 0, 0, 0, 0, 99],
    );
    assert!(report.ejected.is_empty());
    // ... which is enough with a smaller minimum volume.
    let report = success_rate_run(
        sr.with_request_volume(99),
        100,
        &[100, 100, 100, 100, 100, 99],
        &[0, 0, 0, 0, 0, 99],
    );
    assert_eq!(report.ejected, vec![5]);
    // Threshold mode: below the volume, never judged.
    let report = success_rate_run(SuccessRate::threshold(90), 100, &[99], &[99]);
    assert!(report.ejected.is_empty());
}

#[test]
fn success_rate_threshold_mode() {
    let sr = SuccessRate::threshold(90).with_request_volume(10);
    let report = success_rate_run(sr.clone(), 100, &[10, 10, 10], &[1, 2, 5]);
    // 90 % is acceptable, 80 % and 50 % are not; worst first.
    assert_eq!(report.ejected, vec![2, 1]);
    // maxEjectionPercent keeps the worst only.
    let report = success_rate_run(sr, 10, &[10, 10, 10], &[1, 2, 5]);
    assert_eq!(report.ejected, vec![2]);
}

#[test]
fn success_rate_skips_ejected_endpoints_and_local_origin_when_split() {
    let s = OutlierSettings {
        split_local_origin: true,
        consecutive_local_origin: 0,
        ..percent(100)
    }
    .with_success_rate(SuccessRate::threshold(50).with_request_volume(1));
    let (d, eps) = setup(s, 2);
    // Split: local-origin failures are not in the success rate.
    eps[0].observe(CONNECT, secs(1));
    eps[0].observe(OK, secs(1));
    // Ejected by 5xx: not judged by the success rate.
    feed(&d, &eps, 1, E500, 5, secs(1));
    assert!(eps[1].is_ejected(secs(1)));
    eps[1].observe(E500, secs(2));
    assert!(d.sweep(secs(10), &eps).ejected.is_empty());
}

#[test]
fn stdev_threshold_matches_envoy() {
    // Rates 100, 100, 100, 100, 50: mean 90, stdev 20, threshold 90 - 1.9 * 20 = 52.
    let rates = [100.0, 100.0, 100.0, 100.0, 50.0];
    let t = success_rate::stdev_threshold(rates.iter().copied(), 1900);
    assert!((t - 52.0).abs() < 1e-9, "{t}");
}

#[test]
fn huge_times_do_not_overflow() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    feed(&d, &eps, 0, E500, 5, Duration::MAX);
    assert!(eps[0].is_ejected(Duration::from_secs(1)));
    d.sweep(Duration::MAX, &eps);
}

#[derive(Clone, Debug)]
enum Step {
    Observe(usize, Observation),
    Advance(u64),
    Sweep,
}

fn observation() -> impl Strategy<Value = Observation> {
    prop_oneof![
        Just(Observation::Success),
        prop_oneof![Just(200u16), Just(404), 500..505u16].prop_map(Observation::Status),
        prop_oneof![
            Just(LocalFailure::ConnectFailure),
            Just(LocalFailure::Reset),
            Just(LocalFailure::Timeout)
        ]
        .prop_map(Observation::LocalOrigin),
    ]
}

fn step(n: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..n, observation()).prop_map(|(i, o)| Step::Observe(i, o)),
        1 => (0..20_000u64).prop_map(Step::Advance),
        1 => Just(Step::Sweep),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, u32, u32, bool, bool, Vec<Step>)> {
    (1..30usize).prop_flat_map(|n| {
        (
            Just(n),
            0..=100u32,
            1..6u32,
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(step(n), 0..400),
        )
    })
}

proptest! {
    #[test]
    fn ejections_never_exceed_max_percent((n, pct, threshold, split, sr, steps) in scenario()) {
        let mut s = OutlierSettings {
            consecutive_5xx: threshold,
            consecutive_gateway: threshold,
            consecutive_local_origin: threshold,
            split_local_origin: split,
            ..percent(pct)
        };
        if sr {
            s = s.with_success_rate(SuccessRate::threshold(70).with_request_volume(3));
        }
        let (d, eps) = setup(s, n);
        let limit = max_ejected(n, pct);
        let mut now = Duration::ZERO;
        for step in steps {
            match step {
                Step::Observe(i, obs) => {
                    if let Some(reason) = eps[i].observe(obs, now) {
                        d.on_threshold(&eps[i], reason, now, &eps);
                    }
                }
                Step::Advance(ms) => now += Duration::from_millis(ms),
                Step::Sweep => {
                    d.sweep(now, &eps);
                }
            }
            let ejected = eps.iter().filter(|e| e.is_ejected(now)).count();
            prop_assert!(ejected <= limit, "{ejected} > {limit}");
            for e in &eps {
                prop_assert!(e.ejections() <= 10);
            }
        }
    }
}

#[test]
fn concurrent_observations_report_each_threshold_once() {
    let e = EndpointOutlier::new(&OutlierSettings::default());
    let reports = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    if e.observe(E500, secs(1)).is_some() {
                        reports.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // 4000 failures, threshold 5, never ejected (nobody asked the detector).
    assert_eq!(reports.into_inner(), 800);
}

#[test]
fn concurrent_failures_on_probation_report_once() {
    let (d, eps) = setup(OutlierSettings::default(), 1);
    eject_now(&d, &eps, secs(0));
    let reports = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                if eps[0].observe(E503, secs(30)) == Some(EjectReason::Probation) {
                    reports.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(reports.into_inner(), 1);
}
