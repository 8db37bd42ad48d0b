# shellcheck shell=bash
# targets.sh: sourced by the bench scripts. target LABEL VALUE UNIT BUDGET prints one line of
# issue 15's targets: the value, its budget (VALUE <= BUDGET) and PASS or MISSED, so that
# `make bench` shows each target next to what was measured in the same run. An empty VALUE
# (nothing measures it yet) prints NOT MEASURED, which is a miss too.
target() {
	local label=$1 value=$2 unit=$3 budget=$4 verdict
	if [ -z "$value" ]; then
		printf 'target: %-52s %12s (budget <= %s %s): MISSED\n' "$label" "not measured" "$budget" "$unit"
		return
	fi
	awk -v v="$value" -v b="$budget" 'BEGIN { exit !(v <= b) }' && verdict=PASS || verdict=MISSED
	printf 'target: %-52s %9s %-2s (budget <= %s %s): %s\n' "$label" "$value" "$unit" "$budget" "$unit" "$verdict"
}
