package admissiontest

// The objects as a GitOps tool's server-side apply creates them (the API server has set uid,
// creation time, generation and managed fields before admission). NAMESPACE is replaced.

const rolloutJSON = `{
  "apiVersion": "mesh.sluice.dev/v1alpha1",
  "kind": "Rollout",
  "metadata": {
    "name": "checkout",
    "namespace": "NAMESPACE",
    "uid": "6f1c2f0e-2a4b-4d43-9a55-0d6a8f0c1b21",
    "generation": 1,
    "creationTimestamp": "2026-12-02T10:15:04Z",
    "labels": {
      "app.kubernetes.io/name": "checkout",
      "app.kubernetes.io/part-of": "shop",
      "app.kubernetes.io/managed-by": "argocd",
      "team": "payments",
      "argocd.argoproj.io/instance": "shop-production"
    },
    "annotations": {
      "sluice.dev/owner": "payments-oncall@example.com",
      "argocd.argoproj.io/tracking-id": "shop-production:mesh.sluice.dev/Rollout:NAMESPACE/checkout"
    },
    "managedFields": [{
      "manager": "argocd-controller",
      "operation": "Apply",
      "apiVersion": "mesh.sluice.dev/v1alpha1",
      "time": "2026-12-02T10:15:04Z",
      "fieldsType": "FieldsV1",
      "fieldsV1": {
        "f:metadata": {
          "f:annotations": {"f:argocd.argoproj.io/tracking-id": {}, "f:sluice.dev/owner": {}},
          "f:labels": {"f:app.kubernetes.io/managed-by": {}, "f:app.kubernetes.io/name": {}, "f:app.kubernetes.io/part-of": {}, "f:argocd.argoproj.io/instance": {}, "f:team": {}}
        },
        "f:spec": {
          "f:analysis": {"f:failureLimit": {}, "f:healthGates": {}, "f:interval": {}, "f:maxHold": {}, "f:minSamples": {}, "f:onUnreachable": {}},
          "f:progressDeadline": {},
          "f:service": {"f:port": {}, "f:targetPort": {}},
          "f:strategy": {"f:canary": {"f:scaleDownDelay": {}, "f:steps": {}}},
          "f:targetRef": {"f:apiVersion": {}, "f:kind": {}, "f:name": {}},
          "f:trafficRouting": {"f:gatewayAPI": {"f:hostnames": {}, "f:parentRefs": {}}}
        }
      }
    }]
  },
  "spec": {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
    "service": {"port": 80, "targetPort": "http"},
    "trafficRouting": {
      "gatewayAPI": {
        "parentRefs": [{"name": "edge", "namespace": "gateways"}],
        "hostnames": ["shop.example.com", "checkout.example.com"]
      }
    },
    "strategy": {
      "canary": {
        "steps": [
          {"setWeight": 5},
          {"pause": {"duration": "1m"}},
          {"analysis": {"checks": 3}},
          {"setWeight": 25},
          {"analysis": {"checks": 3}},
          {"setWeight": 50},
          {"analysis": {"checks": 5}},
          {"pause": {}}
        ],
        "scaleDownDelay": "30s"
      }
    },
    "analysis": {
      "interval": "30s",
      "healthGates": [{"name": "success-rate"}, {"name": "p99-latency"}],
      "failureLimit": 2,
      "minSamples": 100,
      "onUnreachable": "Hold",
      "maxHold": "10m",
      "inconclusiveLimit": 3
    },
    "progressDeadline": "10m"
  }
}`

const healthGateJSON = `{
  "apiVersion": "mesh.sluice.dev/v1alpha1",
  "kind": "HealthGate",
  "metadata": {
    "name": "success-rate",
    "namespace": "NAMESPACE",
    "uid": "0b7e9d52-31c5-4f4e-8f0e-9b0c3c2d7a10",
    "generation": 1,
    "creationTimestamp": "2026-12-02T10:15:04Z",
    "labels": {"app.kubernetes.io/name": "checkout", "team": "payments"},
    "managedFields": [{
      "manager": "argocd-controller",
      "operation": "Apply",
      "apiVersion": "mesh.sluice.dev/v1alpha1",
      "time": "2026-12-02T10:15:04Z",
      "fieldsType": "FieldsV1",
      "fieldsV1": {"f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}, "f:team": {}}}, "f:spec": {"f:dataPlane": {}, "f:metrics": {}, "f:noData": {}, "f:prometheus": {"f:addresses": {}, "f:timeout": {}}}}
    }]
  },
  "spec": {
    "prometheus": {
      "addresses": ["http://prometheus.monitoring:9090", "http://prometheus-edge.monitoring.svc:9090"],
      "timeout": "5s"
    },
    "dataPlane": "traefik",
    "metrics": [
      {"name": "success-rate", "builtin": "request-success-rate", "thresholdRange": {"min": 0.99}},
      {"name": "no-worse-than-stable", "builtin": "request-success-rate", "compareToStable": {"maxDegradation": 0.01}}
    ],
    "noData": "Inconclusive"
  }
}`

const meshPolicyJSON = `{
  "apiVersion": "mesh.sluice.dev/v1alpha1",
  "kind": "MeshPolicy",
  "metadata": {
    "name": "payments",
    "namespace": "NAMESPACE",
    "uid": "9d3a41c7-52f0-4b8e-a1c4-7e2b9f6d0c33",
    "generation": 1,
    "creationTimestamp": "2026-12-02T10:15:04Z",
    "labels": {"app.kubernetes.io/name": "payments", "team": "payments"}
  },
  "spec": {
    "targetRefs": [{"kind": "Service", "name": "payments"}],
    "provider": "istio",
    "mtls": {"mode": "Strict"},
    "authorization": {
      "rules": [
        {"from": [{"serviceAccount": "shop/checkout"}], "to": [{"methods": ["GET", "POST"], "paths": ["/api/*"]}]},
        {"from": [{"namespace": "monitoring"}], "to": [{"methods": ["GET"], "paths": ["/metrics"]}]}
      ]
    },
    "timeouts": {"request": "5s", "idle": "1m"},
    "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": ["5xx", "reset", "connect-failure"]},
    "circuitBreaker": {
      "maxConnections": 100,
      "maxPendingRequests": 50,
      "outlierDetection": {"consecutive5xx": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 50}
    },
    "loadBalancer": {"algorithm": "LeastRequest"},
    "locality": {"preferClose": true}
  }
}`

const deploymentJSON = `{
  "apiVersion": "apps/v1",
  "kind": "Deployment",
  "metadata": {
    "name": "checkout",
    "namespace": "NAMESPACE",
    "uid": "c2f4e8a1-7b3d-4e6f-9a0b-1c2d3e4f5a6b",
    "generation": 1,
    "creationTimestamp": "2026-12-02T10:15:04Z",
    "labels": {"app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop", "team": "payments"},
    "annotations": {"sluice.dev/owner": "payments-oncall@example.com"},
    "managedFields": [{
      "manager": "argocd-controller",
      "operation": "Apply",
      "apiVersion": "apps/v1",
      "time": "2026-12-02T10:15:04Z",
      "fieldsType": "FieldsV1",
      "fieldsV1": {
        "f:metadata": {"f:annotations": {"f:sluice.dev/owner": {}}, "f:labels": {"f:app.kubernetes.io/name": {}, "f:app.kubernetes.io/part-of": {}, "f:team": {}}},
        "f:spec": {"f:selector": {}, "f:template": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:env": {}, "f:image": {}, "f:name": {}, "f:ports": {}, "f:readinessProbe": {}, "f:resources": {}}}}}}
      }
    }]
  },
  "spec": {
    "replicas": 1,
    "revisionHistoryLimit": 10,
    "progressDeadlineSeconds": 600,
    "selector": {"matchLabels": {"app": "checkout"}},
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
    "template": {
      "metadata": {"labels": {"app": "checkout"}},
      "spec": {
        "containers": [{
          "name": "app",
          "image": "registry.example.com/shop/checkout:1.42.0",
          "imagePullPolicy": "IfNotPresent",
          "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
          "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "PAYMENTS_URL", "value": "http://payments.NAMESPACE:80"}],
          "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
          "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
          "terminationMessagePath": "/dev/termination-log",
          "terminationMessagePolicy": "File"
        }],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "securityContext": {}
      }
    }
  }
}`
