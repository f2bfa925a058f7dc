// A real OCI distribution registry on loopback that requires HTTP basic authentication, for the tests
// of charts pulled from an oci:// reference with credentials (as from nvcr.io with the NGC key).
//
// The registry is go-containerregistry's pkg/registry (an implementation of the OCI distribution API);
// this program only puts a basic-auth check in front of it. Every request without the configured
// username and password gets 401 with a `WWW-Authenticate: Basic` challenge. It prints the address it
// listens on (127.0.0.1:<port>) as its first line of output, then one line per request:
// "<status> <method> <path>". With TLS_CERT and TLS_KEY (PEM files) it serves HTTPS, as registries do.
//
//	REGISTRY_USERNAME='$oauthtoken' REGISTRY_PASSWORD=<key> [TLS_CERT=.. TLS_KEY=..] oci-registry
package main

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
)

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func main() {
	user, pass := os.Getenv("REGISTRY_USERNAME"), os.Getenv("REGISTRY_PASSWORD")
	if user == "" || pass == "" {
		fmt.Fprintln(os.Stderr, "oci-registry: set REGISTRY_USERNAME and REGISTRY_PASSWORD")
		os.Exit(2)
	}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
			rec.Header().Set("WWW-Authenticate", `Basic realm="dfw test OCI registry"`)
			rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(rec, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		} else {
			reg.ServeHTTP(rec, r)
		}
		mu.Lock()
		fmt.Printf("%d %s %s\n", rec.status, r.Method, r.URL.Path)
		mu.Unlock()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-registry:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	if cert, key := os.Getenv("TLS_CERT"), os.Getenv("TLS_KEY"); cert != "" && key != "" {
		err = http.ServeTLS(ln, handler, cert, key)
	} else {
		err = http.Serve(ln, handler)
	}
	fmt.Fprintln(os.Stderr, "oci-registry:", err)
	os.Exit(1)
}
