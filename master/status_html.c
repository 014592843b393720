/*
 * GET /: the status page for people. Rendered from the /status?full document so
 * both always agree, with charts of the last 15 minutes (history.c) drawn as
 * inline SVG; no script and nothing fetched from elsewhere; it reloads itself
 * every two seconds.
 */
#include "master.h"
#include "broker_probe.h"
#include "../common/util.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void esc(struct evbuffer *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': evbuffer_add(b, "&lt;", 4); break;
        case '>': evbuffer_add(b, "&gt;", 4); break;
        case '&': evbuffer_add(b, "&amp;", 5); break;
        case '"': evbuffer_add(b, "&quot;", 6); break;
        default: evbuffer_add(b, s, 1);
        }
    }
}

static long long num(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void duration(struct evbuffer *b, long long s)
{
    if (s >= 86400)
        evbuffer_add_printf(b, "%lldd %lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        evbuffer_add_printf(b, "%lldh %lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        evbuffer_add_printf(b, "%lldm %llds", s / 60, s % 60);
    else
        evbuffer_add_printf(b, "%llds", s);
}

static void recent_failures(struct evbuffer *b, json_t *list)
{
    evbuffer_add_printf(b, "<h2>Recent failures</h2>\n");
    if (!json_array_size(list)) {
        evbuffer_add_printf(b, "<p class=\"ok\">none</p>\n");
        return;
    }
    evbuffer_add_printf(b, "<table id=\"failures\"><tr><th class=\"l\">time (UTC)</th>"
                           "<th class=\"l\">queue</th><th class=\"l\">job</th>"
                           "<th class=\"l\">outcome</th><th class=\"l\">code</th>"
                           "<th class=\"l\">message</th></tr>\n");
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        time_t t = (time_t)json_number_value(json_object_get(f, "time"));
        struct tm tm;
        char when[32];
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        int retried = strcmp(str(f, "outcome"), "retried") == 0;
        evbuffer_add_printf(b, "<tr><td class=\"l\">%s</td><td class=\"l\">", when);
        esc(b, str(f, "queue"));
        evbuffer_add_printf(b, "</td><td class=\"l\">");
        esc(b, str(f, "id"));
        evbuffer_add_printf(b, "</td><td class=\"l %s\">%s</td><td class=\"l\">",
                            retried ? "warn" : "bad", retried ? "retried" : "dead-lettered");
        esc(b, str(f, "code"));
        evbuffer_add_printf(b, "</td><td class=\"l msg\">");
        esc(b, str(f, "message"));
        evbuffer_add_printf(b, "</td></tr>\n");
    }
    evbuffer_add_printf(b, "</table>\n");
}

void status_html(struct master *m, struct evbuffer *b)
{
    json_t *st = status_build(m, 1);
    double now = (double)now_real_ms() / 1000.0;
    json_t *totals = json_object_get(st, "totals");
    int connected = json_is_true(json_object_get(json_object_get(st, "broker"), "connected"));
    int paused = json_is_true(json_object_get(st, "paused"));

    evbuffer_add_printf(
        b, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
           "<meta http-equiv=\"refresh\" content=\"2\"><title>c2a-worker %s</title><style>"
           "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
           "h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em}"
           "table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;"
           "text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}"
           ".ok{color:#176117}.bad{color:#b00020;font-weight:bold}.warn{color:#8a5a00}"
           ".tag{display:inline-block;padding:0 .5em;border-radius:.6em;background:#eee}"
           ".charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}"
           "figcaption{font-size:.9em;color:#555}td.msg{max-width:40em;overflow-wrap:anywhere}"
           "</style></head><body>\n",
        str(st, "state"));
    evbuffer_add_printf(b, "<h1>c2a-worker %s</h1>\n<p>", str(st, "version"));
    evbuffer_add_printf(b, "master <b>%lld</b> &middot; <span class=\"tag %s\">%s</span> &middot; up ",
                        num(st, "pid"), strcmp(str(st, "state"), "running") ? "warn" : "ok",
                        str(st, "state"));
    duration(b, num(st, "uptime_s"));
    evbuffer_add_printf(b, " &middot; broker <span class=\"%s\">%s</span> &middot; %s"
                           " &middot; workers %lld of %lld &middot; generation %lld<br>config ",
                        connected ? "ok" : "bad", connected ? "connected" : "DISCONNECTED",
                        paused ? "<span class=\"warn\">PAUSED</span>" : "consuming",
                        num(st, "workers_alive"), num(st, "workers_target"), num(st, "generation"));
    esc(b, str(st, "config_file"));
    evbuffer_add_printf(b, " &middot; control ");
    esc(b, str(st, "control"));
    json_t *bo = json_object_get(st, "backoff");
    if (num(bo, "boot_failures"))
        evbuffer_add_printf(b, "<br><span class=\"bad\">workers fail to boot: %lld in a row, "
                               "next try in %.1f s</span>",
                            num(bo, "boot_failures"), num(bo, "next_spawn_in_ms") / 1000.0);
    evbuffer_add_printf(b, "</p>\n<h2>Totals</h2>\n<table><tr><th>jobs ok</th><th>failed</th>"
                           "<th>retried</th><th>dead-lettered</th><th>worker restarts</th></tr>"
                           "<tr><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td>"
                           "</tr></table>\n",
                        num(totals, "jobs_ok"), num(totals, "jobs_failed"),
                        num(totals, "jobs_retried"), num(totals, "jobs_dead"),
                        num(totals, "worker_restarts"));
    evbuffer_add_printf(b, "<h2>Last 15 minutes</h2>\n");
    history_charts(m, b);

    evbuffer_add_printf(b, "<h2>Workers</h2>\n<table><tr><th>pid</th><th class=\"l\">state</th>"
                           "<th class=\"l\">current job</th><th>for</th><th>ok</th>"
                           "<th>failed</th><th>in hand</th><th>HTTP</th><th>RSS</th>"
                           "<th>age</th><th>heartbeat</th><th>gen</th></tr>\n");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(st, "workers"), i, w)
    {
        json_t *job = json_object_get(w, "current_job");
        evbuffer_add_printf(b, "<tr><td>%lld</td><td class=\"l\">%s</td><td class=\"l\">",
                            num(w, "pid"), str(w, "state"));
        esc(b, json_is_string(job) ? json_string_value(job) : "-");
        json_t *el = json_object_get(w, "job_elapsed_ms");
        if (json_is_integer(el))
            evbuffer_add_printf(b, "</td><td>%.1f s", json_integer_value(el) / 1000.0);
        else
            evbuffer_add_printf(b, "</td><td>");
        double hb = now - json_number_value(json_object_get(w, "heartbeat_at"));
        evbuffer_add_printf(b,
                            "</td><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td>"
                            "<td>%.1f MB</td><td>",
                            num(w, "jobs_ok"), num(w, "jobs_failed"), num(w, "jobs_in_hand"),
                            num(w, "transfers"), num(w, "rss_kb") / 1024.0);
        duration(b, num(w, "age_s"));
        evbuffer_add_printf(b, "</td><td class=\"%s\">%.1f s ago</td><td>%lld</td></tr>\n",
                            hb > 5 ? "bad" : "ok", hb < 0 ? 0 : hb, num(w, "generation"));
    }
    json_t *broker = json_object_get(st, "broker");
    evbuffer_add_printf(b, "</table>\n<h2>Queues</h2>\n<p>");
    esc(b, str(broker, "url"));
    if (json_is_true(json_object_get(broker, "probe_connected"))) {
        evbuffer_add_printf(b, " &middot; <span class=\"ok\">asked every %d s</span>",
                            PROBE_INTERVAL_MS / 1000);
        if (str(broker, "probe_error")[0]) {
            evbuffer_add_printf(b, " &middot; <span class=\"bad\">");
            esc(b, str(broker, "probe_error"));
            evbuffer_add_printf(b, "</span>");
        }
    } else {
        evbuffer_add_printf(b, " &middot; <span class=\"bad\">broker unreachable: ");
        esc(b, str(broker, "probe_error"));
        evbuffer_add_printf(b, "</span>");
    }
    evbuffer_add_printf(b, "</p>\n<table><tr><th class=\"l\">queue</th><th class=\"l\">kind</th>"
                           "<th>messages</th><th>consumers</th></tr>\n");
    json_t *q;
    json_array_foreach(json_object_get(st, "queues"), i, q)
    {
        evbuffer_add_printf(b, "<tr><td class=\"l\">");
        esc(b, str(q, "name"));
        evbuffer_add_printf(b, "</td><td class=\"l\">%s", str(q, "kind"));
        json_t *msgs = json_object_get(q, "messages"), *cons = json_object_get(q, "consumers");
        if (!json_is_true(json_object_get(q, "exists")))
            evbuffer_add_printf(b, "</td><td class=\"warn\">no such queue</td><td></td></tr>\n");
        else if (json_is_integer(msgs))
            evbuffer_add_printf(b, "</td><td>%lld</td><td class=\"%s\">%lld</td></tr>\n",
                                (long long)json_integer_value(msgs),
                                json_integer_value(cons) || strcmp(str(q, "kind"), "work")
                                    ? ""
                                    : "bad",
                                (long long)json_integer_value(cons));
        else
            evbuffer_add_printf(b, "</td><td>unknown</td><td>unknown</td></tr>\n");
        if (str(q, "error")[0]) {
            evbuffer_add_printf(b, "<tr><td class=\"l bad\" colspan=\"4\">"
                                   "exists with other arguments than the workers': ");
            esc(b, str(q, "error"));
            evbuffer_add_printf(b, "</td></tr>\n");
        }
    }
    evbuffer_add_printf(b, "</table>\n");
    recent_failures(b, json_object_get(st, "recent_failures"));
    evbuffer_add_printf(b, "<h2>Configuration</h2>\n<table>");
    const char *sec;
    json_t *keys;
    json_object_foreach(json_object_get(st, "config"), sec, keys)
    {
        const char *k;
        json_t *v;
        json_object_foreach(keys, k, v)
        {
            evbuffer_add_printf(b, "<tr><td class=\"l\">[%s] %s</td><td class=\"l\">", sec, k);
            esc(b, json_string_value(v));
            evbuffer_add_printf(b, "</td></tr>\n");
        }
    }
    evbuffer_add_printf(b, "</table>\n<p><a href=\"/status\">/status</a> &middot; "
                           "<a href=\"/metrics\">/metrics</a> &middot; "
                           "<a href=\"/healthz\">/healthz</a></p>\n</body></html>\n");
    json_decref(st);
}
