#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_probe:
what the site and its health locations answer, fetched on the host.

What it decides and does, its options and its results: DOCUMENTATION and RETURN below.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: maintenance_mode_probe
short_description: Prove maintenance mode on or off by fetching the site on the host
description:
  - Used by the C(maintenance_mode) role on the web host. Fetches O(site_url) (and the health
    locations under it) from the host itself with Python's urllib, as whatever user the task
    runs as; no privileges needed. Redirects are not followed - the status compared is the
    site's own answer. Read-only, never changes anything (RV(changed) is always false), and
    fetches in check mode as well.
  - O(expect=baseline) fetches once and returns what the site and each health location
    answered (the role records it at C(on), before the flag is written, in the window's
    C(before)). Fails only when the site gives no HTTP answer at all.
  - O(expect=on) proves maintenance mode is really on. The site answers 503 while each health
    location answers what it answered before the window (O(before)), and never 503; a health
    location without a recorded status must answer anything but 503.
  - O(expect=off) proves maintenance mode is really off. The site answers what it answered
    before the window (O(before)); without a record, anything but 503.
  - V(on) and V(off) fetch again every 0.2 s until every answer is the expected one or O(wait)
    seconds have passed (a reload's new workers take a moment), then fail naming every URL that
    answered otherwise and what was expected.
options:
  site_url:
    description:
      - The site as the host reaches it (the role's C(maintenance_mode_probe_url)), e.g.
        V(http://127.0.0.1/).
    type: str
    required: true
  health_paths:
    description:
      - URL paths that keep answering normally during maintenance (the role's
        C(maintenance_mode_health_locations)), resolved against O(site_url). Fetched with
        O(expect=baseline) and O(expect=on); not fetched with O(expect=off).
    type: list
    elements: str
    default: []
  expect:
    description: What to prove - V(baseline) (record), V(on) or V(off).
    type: str
    required: true
    choices: [baseline, "on", "off"]
  before:
    description:
      - What the site answered before the window, as returned by O(expect=baseline)
        (RV(site) and RV(health)); the role passes the open window's C(before). Empty (or a
        status that is not a number) means any answer but 503.
    type: dict
    default: {}
  wait:
    description: Seconds O(expect=on) and O(expect=off) keep fetching before they fail.
    type: float
    default: 10
  timeout:
    description: Seconds one fetch may take; a timeout counts as no answer.
    type: float
    default: 5
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
author: opsplay
"""

EXAMPLES = r"""
- name: Record what the site and the health locations answer before the window
  opsplay.ops.maintenance_mode_probe:
    site_url: "{{ maintenance_mode_probe_url }}"
    health_paths: "{{ maintenance_mode_health_locations }}"
    expect: baseline
  register: maintenance_mode_before

- name: Check that the site answers 503 and the health locations as before
  opsplay.ops.maintenance_mode_probe:
    site_url: "{{ maintenance_mode_probe_url }}"
    health_paths: "{{ maintenance_mode_health_locations }}"
    expect: "on"
    before: "{{ maintenance_mode_opened.window.before | default({}, true) }}"
    wait: "{{ maintenance_mode_probe_wait }}"

- name: Check that the site answers as before the window
  opsplay.ops.maintenance_mode_probe:
    site_url: http://127.0.0.1/
    expect: "off"
    before:
      site: 200
    wait: 30
    timeout: 2
"""

RETURN = r"""
site:
  description:
    - The HTTP status the site answered (O(expect=baseline)).
  returned: success, when O(expect=baseline)
  type: int
  sample: 200
health:
  description:
    - Health path to what it answered (O(expect=baseline)), a status, or a string saying why
      there was none (V(no answer) and the reason).
  returned: success, when O(expect=baseline)
  type: dict
  sample: {"/healthz": 200, "/api/health": 200}
answers:
  description:
    - The last answers of O(expect=on) or O(expect=off). C(site) and each health path (only
      for V(on)) to its status, or a string saying why there was none.
  returned: when O(expect) is V(on) or V(off) (success and failure)
  type: dict
  sample: {"site": 503, "/healthz": 200}
msg:
  description:
    - Why maintenance mode is not proven - every URL that answered otherwise, with what was
      expected; with O(expect=baseline), what the site gave instead of an answer.
  returned: failure
  type: str
  sample: >-
    maintenance mode not on: http://127.0.0.1/ answered 200, expected 503;
    http://127.0.0.1/healthz answered 503, expected 200
"""


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
