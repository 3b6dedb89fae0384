// The demo web page's browser SDKs: @sentry/browser and posthog-js, set up from the JSON the
// server renders into the page (demo/web.py `/frontend`), reporting to readygate's sink.
//
// The server renders <meta name="sentry-trace"> and <meta name="baggage"> from the request's
// trace (readygate's probe sends a traceparent), so Sentry's browserTracingIntegration
// continues that trace and every error event carries contexts.trace.trace_id = the probe's
// trace id. PostHog events carry the same id as the `$trace_id` property (the name PostHog's
// own SDKs use). The button #throw-error throws an uncaught error: the user-defined trigger a
// browser journey clicks. Once both SDKs have delivered (or given up), #report-status says so,
// so a journey can wait for it before the browser closes.
import * as Sentry from '@sentry/browser';
import posthog from 'posthog-js/dist/module.slim.no-external.js';
import { ErrorTrackingExtensions } from 'posthog-js/dist/extension-bundles.js';

const DELIVERY_TIMEOUT_MS = 5000;

function readConfig() {
  const node = document.getElementById('readygate-frontend');
  return node ? JSON.parse(node.textContent || '{}') : {};
}

function traceId() {
  const meta = document.querySelector('meta[name="traceparent"]');
  const parts = meta ? (meta.getAttribute('content') || '').split('-') : [];
  return parts.length === 4 ? parts[1] : undefined;
}

const config = readConfig();
const trace = traceId();
// Sabotage knob no_frontend_error_reporting: both SDKs drop every report before sending.
const drop = config.drop_reports === true;
let posthogQueued = 0;

if (config.sentry_dsn) {
  Sentry.init({
    dsn: config.sentry_dsn,
    release: config.release,
    environment: config.environment,
    integrations: [Sentry.browserTracingIntegration({ instrumentNavigation: false })],
    tracesSampleRate: 1.0,
    sendClientReports: false,
    initialScope: { tags: { service: config.service, request_id: config.request_id } },
    beforeSend: (event) => (drop ? null : event),
  });
}

if (config.posthog_host && config.posthog_key) {
  posthog.init(config.posthog_key, {
    api_host: config.posthog_host,
    // the slim build with only error tracking: no surveys, replay or flags in the page
    __extensionClasses: { ...ErrorTrackingExtensions },
    persistence: 'memory',
    request_batching: false, // one request per event: the journey waits for delivery
    autocapture: false,
    capture_pageview: false,
    capture_pageleave: false,
    capture_dead_clicks: false,
    capture_heatmaps: false,
    capture_performance: false,
    disable_session_recording: true,
    disable_surveys: true,
    disable_product_tours: true,
    disable_conversations: true,
    disable_web_experiments: true,
    disable_external_dependency_loading: true,
    advanced_disable_flags: true,
    // posthog-js drops every event of an automated browser (navigator.webdriver, a
    // HeadlessChrome brand), readygate's probes included; PostHog then marks the events
    // $browser_type=bot instead. A page that must show synthetic errors needs this.
    opt_out_useragent_filter: true,
    before_send: (event) => {
      if (drop || event === null) return null;
      if (event.event === '$exception') posthogQueued += 1;
      return event;
    },
  });
  posthog.register({
    $trace_id: trace,
    request_id: config.request_id,
    service: config.service,
    release: config.release,
    environment: config.environment,
  });
}

// Resolves once `count` requests to the PostHog host have completed (a resource timing entry
// is written when the response ends), or after the timeout.
function posthogDelivered(count, timeoutMs) {
  const host = config.posthog_host || '';
  const done = () => performance.getEntriesByType('resource')
    .filter((e) => host && e.name.startsWith(host)).length >= count;
  return new Promise((resolve) => {
    if (count === 0 || done()) { resolve(true); return; }
    const observer = new PerformanceObserver(() => {
      if (done()) { observer.disconnect(); clearTimeout(timer); resolve(true); }
    });
    const timer = setTimeout(() => { observer.disconnect(); resolve(false); }, timeoutMs);
    observer.observe({ type: 'resource', buffered: true });
  });
}

function showStatus(text) {
  const status = document.getElementById('report-status');
  if (status) status.textContent = text;
}

window.addEventListener('error', (event) => {
  if (config.posthog_host && config.posthog_key) {
    posthog.captureException(event.error || event.message);
  }
  // Let Sentry's own handler (registered before this one) queue its event first.
  setTimeout(() => {
    Promise.all([
      config.sentry_dsn ? Sentry.flush(DELIVERY_TIMEOUT_MS) : Promise.resolve(true),
      posthogDelivered(posthogQueued, DELIVERY_TIMEOUT_MS),
    ]).then(() => showStatus('error reports sent'));
  }, 0);
});

function throwError() {
  // Uncaught on purpose: the browser SDKs must see it the way they see a real bug.
  throw new Error(`readygate frontend probe error (trace ${trace || 'none'})`);
}

function bind() {
  const button = document.getElementById('throw-error');
  if (button) button.addEventListener('click', throwError);
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', bind);
} else {
  bind();
}
