package scheduler

import (
	"fmt"
	"strconv"
	"strings"
)

// SchedFields are SUBMIT_JOB_SCHED's five time fields as sent.
type SchedFields struct {
	Minute, Hour, DayOfMonth, Month, DayOfWeek string
}

// SchedSpec turns SUBMIT_JOB_SCHED fields into a 5-field cron spec. An
// empty field means any. Fields take cron syntax (numbers, lists, ranges,
// steps; names for month and weekday). The day of week counts 0 = Monday
// as PROTOCOL defines it, unless cronWeekdays is set (0 = Sunday, what
// appscode/g2's clients send); it is translated as a set, so protocol
// "4-6" (Friday to Sunday) becomes cron "0,5,6".
func SchedSpec(f SchedFields, cronWeekdays bool) (string, error) {
	fields := []string{f.Minute, f.Hour, f.DayOfMonth, f.Month, f.DayOfWeek}
	for i, v := range fields {
		v = strings.TrimSpace(v)
		if v == "" {
			v = "*"
		}
		if strings.ContainsAny(v, " \t") {
			return "", fmt.Errorf("SCHED field %d %q contains spaces", i+1, v)
		}
		fields[i] = v
	}
	if !cronWeekdays && fields[4] != "*" && fields[4] != "?" {
		dow, err := protocolWeekdays(fields[4])
		if err != nil {
			return "", err
		}
		fields[4] = dow
	}
	return strings.Join(fields, " "), nil
}

var dayNames = map[string]int{"MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5, "SUN": 6}

// protocolWeekdays parses a day-of-week field in PROTOCOL numbering
// (0 = Monday … 6 = Sunday) into a 7-bit set and writes it back as an
// explicit cron list (0 = Sunday). An explicit list keeps the field
// "restricted" for cron's day-of-month OR day-of-week rule.
func protocolWeekdays(field string) (string, error) {
	var set [7]bool
	for _, item := range strings.Split(field, ",") {
		rng, step := item, 1
		if i := strings.IndexByte(item, '/'); i >= 0 {
			n, err := strconv.Atoi(item[i+1:])
			if err != nil || n < 1 {
				return "", fmt.Errorf("SCHED day of week %q: bad step", field)
			}
			rng, step = item[:i], n
		}
		lo, hi := 0, 6
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = weekday(a); err != nil {
				return "", fmt.Errorf("SCHED day of week %q: %w", field, err)
			}
			hi = lo
			if isRange {
				if hi, err = weekday(b); err != nil {
					return "", fmt.Errorf("SCHED day of week %q: %w", field, err)
				}
			} else if step > 1 {
				hi = 6 // "N/step" means N through the end
			}
			if hi < lo {
				return "", fmt.Errorf("SCHED day of week %q: range %d-%d runs backwards", field, lo, hi)
			}
		}
		for d := lo; d <= hi; d += step {
			set[d] = true
		}
	}
	var cron []string
	for c := range 7 { // cron day c is protocol day (c+6)%7
		if set[(c+6)%7] {
			cron = append(cron, strconv.Itoa(c))
		}
	}
	return strings.Join(cron, ","), nil
}

func weekday(s string) (int, error) {
	if d, ok := dayNames[strings.ToUpper(s)]; ok {
		return d, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 6 {
		return 0, fmt.Errorf("%q is not a day 0-6 (0 = Monday) or MON-SUN", s)
	}
	return n, nil
}
