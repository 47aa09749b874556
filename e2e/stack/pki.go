package stack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// pki is the stack's certificate authority and the files issued from it. Generated per stack
// with crypto/x509 (ECDSA P-256: fast to generate, accepted by every component) instead of
// envtest's helpers, which live in an internal package of controller-runtime.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CACert string // ca.crt: --client-ca-file, --root-ca-file, kubeconfigs
	caPEM  []byte

	ServingCert, ServingKey string // kube-apiserver's serving pair
	SAKey, SAPub            string // service-account signing key and its public key

	// The aggregator's front proxy: --requestheader-client-ca-file and
	// --proxy-client-cert-file/--proxy-client-key-file (CN frontProxyClientName).
	FrontProxyCACert, ProxyClientCert, ProxyClientKey string
}

// frontProxyClientName is the common name of the client certificate kube-apiserver presents
// to aggregated API servers (--requestheader-allowed-names).
const frontProxyClientName = "front-proxy-client"

func newPKI(dir string, servingIPs []net.IP, servingNames []string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p, err := newCA(dir, "sluice-e2e-ca", "ca.crt")
	if err != nil {
		return nil, err
	}
	// The aggregator's front proxy: kube-apiserver presents ProxyClientCert to aggregated API
	// servers (APIService), which may check it against FrontProxyCACert. A CA of its own, as
	// kubeadm does, so no other client certificate of the stack can assert identities in
	// X-Remote-* headers.
	front, err := newCA(dir, "sluice-e2e-front-proxy-ca", "front-proxy-ca.crt")
	if err != nil {
		return nil, err
	}
	p.FrontProxyCACert = front.CACert
	proxyClient := &x509.Certificate{
		Subject:     pkix.Name{CommonName: frontProxyClientName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.ProxyClientCert, p.ProxyClientKey, _, _, err = front.issue("front-proxy-client", proxyClient); err != nil {
		return nil, err
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: servingIPs,
		DNSNames:    servingNames,
	}
	if p.ServingCert, p.ServingKey, _, _, err = p.issue("apiserver", serving); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p.SAKey = filepath.Join(dir, "sa.key")
	if err := writeKey(p.SAKey, saKey); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	p.SAPub = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(p.SAPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// newCA generates a self-signed CA and writes its certificate to dir/file.
func newCA(dir, commonName, file string) (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, ca: ca, caKey: caKey, CACert: filepath.Join(dir, file)}
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(p.CACert, p.caPEM, 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// issue signs tmpl with the CA and writes <name>.crt/.key; it also returns the PEM bytes.
func (p *pki) issue(name string, tmpl *x509.Certificate) (certPath, keyPath string, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", "", nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(7 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return "", "", nil, nil, err
	}
	certPath, keyPath = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return "", "", nil, nil, err
	}
	if err := writeKey(keyPath, key); err != nil {
		return "", "", nil, nil, err
	}
	keyPEM, err = os.ReadFile(keyPath)
	return certPath, keyPath, certPEM, keyPEM, err
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// clientConfig issues a client certificate for user in groups (the API server maps CN to the
// user name and O to groups) and returns a rest.Config plus a kubeconfig file for it.
func (p *pki) clientConfig(name, user string, groups []string, server string) (*rest.Config, string, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	_, _, certPEM, keyPEM, err := p.issue(name, tmpl)
	if err != nil {
		return nil, "", err
	}
	cfg := &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.caPEM, CertData: certPEM, KeyData: keyPEM,
		},
		// The defaults (5 QPS) slow down tests that create and poll many objects.
		QPS: 100, Burst: 200,
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["sluice-e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.caPEM}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	kc.Contexts["sluice-e2e"] = &clientcmdapi.Context{Cluster: "sluice-e2e", AuthInfo: user, Namespace: "default"}
	kc.CurrentContext = "sluice-e2e"
	path := filepath.Join(p.dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return nil, "", fmt.Errorf("writing %s: %w", path, err)
	}
	return cfg, path, nil
}
