package canon

import (
	"net/http"
	"testing"
)

type inner struct {
	Temp *float64 `json:"temp"`
}

type req struct {
	inner
	Model string `json:"model"`
	Opts  struct {
		Usage bool `json:"usage"`
	} `json:"opts"`
}

func TestDecode(t *testing.T) {
	for _, c := range []struct{ body, param, msg string }{
		{`{"model":1}`, "model", `field "model" has the wrong type: got number, expected a string`},
		{`{"temp":"x"}`, "temp", `field "temp" has the wrong type: got string, expected a number`},
		{`{"opts":{"usage":1}}`, "opts.usage", `field "opts.usage" has the wrong type: got number, expected true or false`},
		{`{"opts":{"other":1}}`, "other", `unknown field "other": mica does not support it (remove it from the request)`},
		{`{"model":"a"} {}`, "", "the request body has data after the JSON object"},
		{`{"model":"a"`, "", "malformed JSON: the body ends too early"},
		{`"x"`, "", "the request body must be a JSON object"},
		{`{x}`, "", "malformed JSON at byte 2: invalid character 'x' looking for beginning of object key string"},
	} {
		var r req
		err := Decode([]byte(c.body), &r, "inner")
		e := As(err)
		if err == nil || e.Kind != Invalid || e.Param != c.param || e.Msg != c.msg {
			t.Errorf("%s: %+v, want param %q msg %q", c.body, e, c.param, c.msg)
		}
	}
	var r req
	if err := Decode([]byte(` {"model":"a","temp":0.5,"opts":{"usage":true}} `), &r, "inner"); err != nil || *r.Temp != 0.5 || !r.Opts.Usage {
		t.Fatalf("%v %+v", err, r)
	}
}

func TestKinds(t *testing.T) {
	for k, want := range map[Kind]int{Invalid: 400, NotFound: 404, NotAllowed: 405, TooLarge: 413, Busy: 429, Unavailable: 503, Internal: 500} {
		if k.Status() != want || k.Type() == "" {
			t.Errorf("kind %d: %d %q", k, k.Status(), k.Type())
		}
	}
	if e := As(http.ErrBodyNotAllowed); e.Kind != Internal {
		t.Errorf("plain error: %+v", e)
	}
}
