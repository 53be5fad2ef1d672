package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/xserver/xserver/examples/login/web"
)

// Handler puts the browser client in front of any login API: GET / is
// the page, everything else reaches the API.
func ExampleHandler() {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "api:", r.Method, r.URL.Path)
	})
	srv := httptest.NewServer(web.Handler(api))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))

	resp, err = http.Post(srv.URL+"/login", "application/json", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output:
	// 200 text/html; charset=utf-8
	// api: POST /login
}
