// Command testbin stands in for the programs of the public test images that critest and
// Kubernetes' e2e specs run: it is nginx, httpd-foreground, nonewprivs (nnp), pause or nc (the
// netcat of the agnhost image, with UDP), chosen by the name it is run as. The images are built
// by package images with this binary in them.
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
)

func main() {
	name := filepath.Base(os.Args[0])
	if name == "nginx" {
		// Like nginx, the serving process calls itself "nginx: master process …" (critest's
		// ContainerPID spec looks for that in /proc/1/cmdline); re-executing with that argv[0]
		// keeps the pid and the command name nginx.
		exe, err := os.Executable()
		if err != nil {
			fail(err)
		}
		fail(syscall.Exec(exe, []string{nginxMaster}, os.Environ()))
	}
	switch name {
	case nginxMaster:
		// Writes its pid file, then serves the page on $PORT (80 by default).
		if err := os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fail(err)
		}
		serve("nginx", "/usr/share/nginx/html")
	case "httpd-foreground":
		serve("httpd", "/usr/local/apache2/htdocs")
	case "nc":
		os.Exit(netcat(os.Args[1:]))
	case "pause":
		// The sandbox image other runtimes need (berth does not): wait for SIGTERM or SIGINT.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
	case "nonewprivs", "nnp":
		// Installed setuid root: with no_new_privs the kernel ignores the bit.
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	default:
		fail(fmt.Errorf("unknown program %q", os.Args[0]))
	}
}

const nginxMaster = "nginx: master process nginx -g daemon off;"

func serve(name, root string) {
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	fmt.Fprintf(os.Stderr, "%s: serving %s on port %s\n", name, root, port)
	fail(http.ListenAndServe(":"+port, http.FileServer(http.Dir(root))))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
