"""Small local HTTP fakes of the third-party SaaS and APIs golive reads, answering like the real ones where golive
looks (paths, auth, status codes, JSON shapes, pagination), with fault switches read on every request.

Three servers, each a part of the stack (sandbox/part.py) and runnable on its own (`python -m
golive.sandbox.fakes.<server>`), or in a thread in tests (`running(...)`):

- team_apis.py (the `saas` service): Slack (slack.py), PagerDuty (pagerduty.py), the communication templates'
  document host (documents.py);
- service_apis.py (`saas2`): Twilio, Stripe, Sentry, Google Analytics, Grafana, Elasticsearch and Kibana, the Docker
  Engine, Kubernetes (twilio.py, stripe.py, sentry.py, analytics.py, grafana.py, elastic.py, docker.py,
  kubernetes.py);
- package_mirrors.py (`advisories`): the OSV API, a PEP 503 package index and npm's advisory endpoint.

auth.py reads the credentials of a request. The fakes import nothing of sandbox/parts/.
"""
