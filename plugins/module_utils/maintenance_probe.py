"""What the site and its health locations answer, fetched on the host, and what they must answer
around a maintenance window (the maintenance_mode role's proof).

Before the window (``baseline``) the answers are recorded; with the window open the site must
answer 503 while each health location answers as before (``expected(\"on\")``); after it the site
must answer as before (``expected(\"off\")``). ``prove`` asks again until the answers are right or
``wait`` seconds have passed (a reload's new nginx workers take a moment).

Standard library only: this file is shipped to the host with the module that imports it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, timeout):
    """The HTTP status of url, or a string saying why there is none."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return "no answer (%s)" % (getattr(exc, "reason", None) or exc)


def health_urls(site_url, paths):
    return {path: urllib.parse.urljoin(site_url, path) for path in paths}


def expected(expect, before, health_paths):
    """{"site": rule, path: rule}: a rule is an int (that status) or "not 503"."""
    before = before or {}
    if expect == "on":
        rules = {"site": 503}
        for path in health_paths:
            was = (before.get("health") or {}).get(path)
            rules[path] = was if isinstance(was, int) and was != 503 else "not 503"
        return rules
    was = before.get("site")
    return {"site": was if isinstance(was, int) else "not 503"}


def mismatches(rules, answers, urls):
    """One description per URL whose answer breaks its rule."""
    found = []
    for key, rule in rules.items():
        answer = answers.get(key)
        ok = answer == rule if isinstance(rule, int) else isinstance(answer, int) and answer != 503
        if not ok:
            wanted = "expected %s" % rule if isinstance(rule, int) else "expected anything but 503"
            shown = "answered %s" % answer if isinstance(answer, int) else str(answer)
            found.append("%s %s, %s" % (urls[key], shown, wanted))
    return found


def bad_health_paths(paths):
    """The one line refusing health locations that are not URL paths, or None."""
    wrong = [path for path in paths if not path.startswith("/")]
    if wrong:
        return "maintenance_mode_health_locations must be URL paths starting with / (got %s)" % (
            ", ".join(wrong)
        )
    return None


def baseline(site_url, health_paths, timeout, get=fetch):
    """(before, problem): what the site and each health location answer now, as kept in the
    flag ({"site": status, "health": {path: status}}); problem when the site gives no answer."""
    urls = dict(health_urls(site_url, health_paths), site=site_url)
    answers = {key: get(url, timeout) for key, url in urls.items()}
    before = {"site": answers["site"], "health": {p: answers[p] for p in health_paths}}
    if not isinstance(answers["site"], int):
        return before, "site %s gave %s" % (site_url, answers["site"])
    return before, None


def prove(site_url, health_paths, expect, before, wait, timeout, get=fetch, sleep=time.sleep):
    """(answers, problem): problem is None once the answers follow ``expected``; else, after
    ``wait`` seconds, 'maintenance mode not EXPECT: URL answered X, expected Y; ...'."""
    urls = dict(health_urls(site_url, health_paths), site=site_url)
    rules = expected(expect, before, health_paths)
    deadline = time.monotonic() + wait
    while True:
        answers = {key: get(urls[key], timeout) for key in rules}
        problems = mismatches(rules, answers, urls)
        if not problems or time.monotonic() >= deadline:
            break
        sleep(0.2)
    if problems:
        return answers, "maintenance mode not %s: %s" % (expect, "; ".join(problems))
    return answers, None
