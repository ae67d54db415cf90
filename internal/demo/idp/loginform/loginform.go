// Package loginform fills in the demo identity provider's sign-in page for
// the programs that sign in without a browser: the load benchmark, the
// fleet test and the server tests. The page is the provider's own (see
// idp's pages.go), so a few patterns read it; this is no HTML parser for
// pages of other origins.
package loginform

import (
	"net/url"
	"regexp"
	"strings"
)

var (
	hiddenInput = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*>`)
	attrName    = regexp.MustCompile(`name="([^"]*)"`)
	attrValue   = regexp.MustCompile(`value="([^"]*)"`)
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	// entities are those html/template writes in attribute values.
	entities = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&quot;", `"`, "&#39;", "'", "&#43;", "+")
)

// Fill reads page, the sign-in page that the URL at served, and returns
// where to post it and what: the page's hidden fields (the pending
// authorization request) with username and password set. A page without a
// form action posts to /authorize on at's origin.
func Fill(at *url.URL, page, username, password string) (*url.URL, url.Values, error) {
	form := url.Values{"username": {username}, "password": {password}}
	for _, in := range hiddenInput.FindAllString(page, -1) {
		n, v := attrName.FindStringSubmatch(in), attrValue.FindStringSubmatch(in)
		if n != nil && v != nil {
			form.Set(entities.Replace(n[1]), entities.Replace(v[1]))
		}
	}
	action := at.ResolveReference(&url.URL{Path: "/authorize"})
	if m := formAction.FindStringSubmatch(page); m != nil {
		ref, err := url.Parse(entities.Replace(m[1]))
		if err != nil {
			return nil, nil, err
		}
		action = at.ResolveReference(ref)
	}
	return action, form, nil
}
