package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/scheduler"
)

func TestPage(t *testing.T) {
	f := newFixture(t, withToken("tok"))
	job := f.schedule(`{"function":"mail","unique":"welcome-42","in":"2h"}`)
	sc := f.schedule(`{"function":"report","cron":"*/15 * * * *"}`)
	early := f.schedule(`{"function":"mail","in":"1m"}`)
	f.set(t0.Add(90 * time.Second))
	sched := scheduler.New(scheduler.Config{Store: f.st, Sink: f.srv})
	if err := sched.Tick(context.Background(), f.now(), t0); err != nil {
		t.Fatal(err)
	}

	r := f.expect(http.StatusOK, "GET", "/", "")
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	page := string(r.body)
	for _, want := range []string{
		`data-auth="required"`, `id="token"`, // asks for the token
		`<tr data-handle="` + job + `">`, `data-action="cancel" data-handle="` + job + `"`,
		`data-action="pause" data-handle="` + sc + `"`, "welcome-42", "*/15 * * * *",
		`<svg class="chart"`, `<rect class="bar`, ">30s<", // early ran 30 s late
		`href="/?function=mail"`, `/assets/app.js`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page refers to another site: it must work offline")
	}

	f.expect(http.StatusOK, "POST", "/api/v1/scheduled/"+sc+"/pause", "", "Authorization", "Bearer tok")
	page = string(f.expect(http.StatusOK, "GET", "/?function=report", "").body)
	if !strings.Contains(page, `data-action="resume" data-handle="`+sc+`"`) || strings.Contains(page, `<tr data-handle="`+job+`">`) {
		t.Errorf("filtered page after the pause:\n%s", page)
	}
	page = string(f.expect(http.StatusOK, "GET", "/?explain="+early, "").body)
	if !strings.Contains(page, `<section id="explain">`) || !strings.Contains(page, "2026-06-01T12:01:30Z") {
		t.Errorf("explain section missing the run released at 12:01:30")
	}
	if page := string(f.expect(http.StatusBadRequest, "GET", "/?cursor=bogus", "").body); !strings.Contains(page, "cursor") {
		t.Error("a bad cursor is not explained on the page")
	}
	f.expect(http.StatusNotFound, "GET", "/?explain=H:test:77777", "")
}
