#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_probe:
what the site and its health locations answer, fetched on the host.

What it decides and does, its options and its results: maintenance_mode_probe.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule


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


def main():
    module = AnsibleModule(
        argument_spec={
            "site_url": {"type": "str", "required": True},
            "health_paths": {"type": "list", "elements": "str", "default": []},
            "expect": {"type": "str", "required": True, "choices": ["baseline", "on", "off"]},
            "before": {"type": "dict", "default": {}},
            "wait": {"type": "float", "default": 10},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    params = module.params
    urls = dict(health_urls(params["site_url"], params["health_paths"]), site=params["site_url"])
    if params["expect"] == "baseline":
        answers = {key: fetch(url, params["timeout"]) for key, url in urls.items()}
        if not isinstance(answers["site"], int):
            module.fail_json(msg="site %s gave %s" % (urls["site"], answers["site"]))
        module.exit_json(
            changed=False,
            site=answers["site"],
            health={p: answers[p] for p in params["health_paths"]},
        )
    rules = expected(params["expect"], params["before"], params["health_paths"])
    deadline = time.monotonic() + params["wait"]
    while True:
        answers = {key: fetch(urls[key], params["timeout"]) for key in rules}
        problems = mismatches(rules, answers, urls)
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if problems:
        module.fail_json(
            msg="maintenance mode not %s: %s" % (params["expect"], "; ".join(problems)),
            answers=answers,
        )
    module.exit_json(changed=False, answers=answers)


if __name__ == "__main__":
    main()
