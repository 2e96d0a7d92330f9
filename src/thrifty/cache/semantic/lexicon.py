"""Word lists for the near-miss guard (``guard.py``): negators, antonym axes, numbers, units.

Plain data, English only. An entry is lower case; inflections (-s, -es, -ed, -d, -ing) are matched
by the guard, so list the base form unless it is irregular.
"""

from __future__ import annotations


def _w(text: str) -> frozenset[str]:
    return frozenset(text.split())


__all__ = [
    "AXES",
    "COMMON_STARTERS",
    "FORMAT_WORDS",
    "IMPLICIT_NEGATORS",
    "NEGATORS",
    "NUMBER_WORDS",
    "OPPOSED_PREFIXES",
    "ORDINAL_WORDS",
    "PHRASAL_VERBS",
    "SCALE_WORDS",
    "SOFT_NUMBER_WORDS",
    "STOPWORDS",
    "TIME_DEICTICS",
    "TIME_DIRECTIONS",
    "TIME_UNITS",
    "UNITS",
]

NEGATORS = _w(
    """
    not no non never none absence absent lack lacks lacking omit omits omitting omitted except
    unless nothing nobody nowhere neither nor cannot without cant dont doesnt
    isnt arent wasnt werent wont wouldnt shouldnt couldnt didnt hasnt havent hadnt mustnt
    neednt aint
    """
)

# Words that negate without a negator: "avoid X" = do not X, "prevent X" = make X not happen,
# "exclude X" = do not include X (as "except X" does), "language-agnostic" = not tied to a
# language. Counted as negations, so that "used to not
# create copies" and "used to avoid creating copies" hold as many as each other.
IMPLICIT_NEGATORS = _w(
    """
    avoid avoids avoided avoiding prevent prevents prevented preventing refrain refrains
    refrained refraining avert averts averted averting exclude excludes excluded excluding
    agnostic
    """
)

# Time references relative to now: "last week" / "next week", "today" / "tomorrow". A direction
# word, then (within two words) a unit; single words that carry both. "May" and "fall" are left
# out of the units: after "this" they are a verb more often than a time ("this may fail").
TIME_DIRECTIONS = {
    "last": "last", "previous": "last", "past": "last", "next": "next", "coming": "next",
    "following": "next", "upcoming": "next", "this": "this", "current": "this",
}  # fmt: skip
TIME_UNITS = _w(
    """
    minute hour day week weekend fortnight month quarter year season semester decade century
    morning afternoon evening night monday tuesday wednesday thursday friday saturday sunday
    january february march april june july august september october november december
    spring summer autumn winter
    """
)
TIME_DEICTICS = {
    "today": ("this", "day"), "tonight": ("this", "night"), "tomorrow": ("next", "day"),
    "yesterday": ("last", "day"), "morning": ("", "morning"), "afternoon": ("", "afternoon"),
    "evening": ("", "evening"), "overnight": ("", "night"), "weekday": ("", "weekday"),
    "weekend": ("", "weekend"),
}  # fmt: skip

# Antonym axes: (name, pole A, pole B). "on"/"off" style particles enter as "<verb>_<particle>"
# tokens built from PHRASAL_VERBS (see guard). A word may sit on several axes.
AXES: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = tuple(
    (name, frozenset(a.split()), frozenset(b.split()))
    for name, a, b in (
        (
            "on/off",
            "enable activate turn_on switch_on power_on power_up",
            "disable deactivate turn_off switch_off power_off power_down shut_down shut_off",
        ),
        (
            "in/out",
            "log_in sign_in login signin opt_in zoom_in check_in clock_in",
            "log_out sign_out logout signout opt_out zoom_out check_out clock_out",
        ),
        (
            "up/down",
            "scale_up speed_up upscale upgrade",
            "scale_down slow_down downscale downgrade",
        ),
        (
            "allow/deny",
            "allow permit accept approve grant whitelist allowlist",
            "deny forbid prohibit reject refuse revoke blacklist denylist block",
        ),
        # "exclude" itself is a negator (IMPLICIT_NEGATORS): "not include" = "exclude"
        ("include/exclude", "include inclusive", "exclusive"),
        ("row/column", "row", "column"),
        ("local/remote", "local locally", "remote remotely"),
        ("load/save", "load", "save dump"),
        ("source/target", "source src", "target destination dest"),
        ("required/optional", "required mandatory compulsory obligatory necessary", "optional"),
        (
            "increase/decrease",
            "increase raise grow increment maximize maximise expand extend boost",
            "decrease reduce lower shrink decrement minimize minimise cut",
        ),
        (
            "more/less",
            "more most higher highest larger largest bigger biggest greater greatest "
            "faster fastest",
            "less least fewer fewest lower lowest smaller smallest slower slowest",
        ),
        ("max/min", "max maximum", "min minimum"),
        ("before/after", "before earlier prior previous", "after later subsequent next"),
        (
            "add/remove",
            "add insert create append attach mount",
            "remove delete drop erase detach unmount destroy",
        ),
        ("install/uninstall", "install", "uninstall"),
        ("lock/unlock", "lock", "unlock"),
        ("subscribe/unsubscribe", "subscribe follow", "unsubscribe unfollow"),
        (
            "encrypt/decrypt",
            "encrypt encode compress serialize serialise zip pack",
            "decrypt decode decompress deserialize deserialise unzip unpack",
        ),
        ("import/export", "import", "export"),
        ("upload/download", "upload", "download"),
        ("push/pull", "push", "pull"),
        ("send/receive", "send sent", "receive"),
        ("buy/sell", "buy bought purchase", "sell sold"),
        ("lend/borrow", "lend lent", "borrow"),
        ("connect/disconnect", "connect", "disconnect"),
        ("open/close", "open", "close"),
        ("show/hide", "show display reveal unhide", "hide hidden conceal"),
        ("expand/collapse", "expand", "collapse"),
        ("start/stop", "start begin began begun launch", "stop end halt terminate pause kill"),
        ("first/last", "first earliest oldest", "last latest newest"),
        ("best/worst", "best better", "worst worse"),
        ("true/false", "true", "false"),
        ("pass/fail", "pass succeed success successful", "fail failure failed unsuccessful"),
        ("win/lose", "win won gain profit", "lose lost loss"),
        ("asc/desc", "ascending asc", "descending desc"),
        ("top/bottom", "top", "bottom"),
        ("above/below", "above", "below beneath"),
        ("inside/outside", "inside inner internal interior", "outside outer external exterior"),
        ("input/output", "input inbound incoming", "output outbound outgoing"),
        ("public/private", "public", "private"),
        ("positive/negative", "positive", "negative"),
        ("hot/cold", "hot warm heat", "cold cool"),
        ("cheap/expensive", "cheap cheaper cheapest", "expensive costly"),
        ("upper/lower", "upper uppercase", "lower lowercase"),
        ("horizontal/vertical", "horizontal horizontally", "vertical vertically"),
        ("sync/async", "sync synchronous synchronously", "async asynchronous asynchronously"),
        ("read/write", "read reading", "write wrote written writing"),
        ("client/server", "client", "server"),
        ("north/south", "north northern", "south southern"),
        ("east/west", "east eastern", "west western"),
        (
            "male/female",
            "male man men boy boys he him his",
            "female woman women girl girls she her hers",
        ),
        ("same/different", "same identical similar", "different distinct"),
        ("agree/disagree", "agree like love", "disagree dislike hate"),
        ("possible/impossible", "possible able", "impossible unable"),
        ("valid/invalid", "valid legal", "invalid illegal"),
        ("safe/unsafe", "safe secure", "unsafe insecure dangerous"),
        (
            "plus/minus",
            "plus addition",
            "minus subtract subtraction",
        ),
        ("pros/cons", "pros advantages benefits", "cons disadvantages drawbacks"),
        ("encode/decode", "encoder", "decoder"),
        ("rise/fall", "rise rose", "fall fell"),
        ("day/night", "day daytime", "night nighttime"),
        ("yesterday/tomorrow", "yesterday", "tomorrow"),
    )
)

# Prefixes that reverse a word's direction when one replaces the other on the same stem:
# upsample / downsample, preorder / postorder, overfit / underfit, undo / redo, implicit /
# explicit, superclass / subclass. ``""`` is the bare stem (unlock / lock). Prefix pairs that
# also make unrelated words from one stem ("dis": display / play, "de": debug / bug) are left out.
OPPOSED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("up", "down"),
    ("pre", "post"),
    ("over", "under"),
    ("in", "out"),
    ("in", "ex"),
    ("im", "ex"),
    ("en", "de"),
    ("un", "re"),
    ("un", ""),
    ("super", "sub"),
    ("inter", "intra"),
    ("intro", "extro"),
    ("endo", "exo"),
    ("hyper", "hypo"),
    ("micro", "macro"),
    ("homo", "hetero"),
    ("max", "min"),
    ("fore", "back"),
    ("front", "back"),
    ("left", "right"),
    ("upper", "lower"),
)

# Verbs whose particle carries the polarity: "turn the light off" -> turn_off.
PHRASAL_VERBS = _w(
    """
    turn switch power log sign opt zoom check clock scale speed slow shut
    """
)

NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "dozen": 12, "twice": 2, "thrice": 3, "double": 2, "triple": 3,
}  # fmt: skip
# "one" is often a pronoun ("which one"): it may match a 1 but never causes a rejection alone.
SOFT_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "once": 1,
    "single": 1,
    "first": 1,
    "second": 2,
    "couple": 2,
}
SCALE_WORDS = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9,
               "trillion": 10**12, "k": 1000, "m": 10**6, "bn": 10**9}  # fmt: skip
ORDINAL_WORDS = {
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20, "hundredth": 100,
}  # fmt: skip

# Unit spellings -> canonical unit. Attached to a number ("5 km", "5km", "$5", "5%") or alone.
_UNIT_GROUPS = {
    "km": "km kms kilometer kilometers kilometre kilometres",
    "m": "meter meters metre metres",
    "cm": "cm centimeter centimeters centimetre centimetres",
    "mm": "mm millimeter millimeters millimetre millimetres",
    "mi": "mi mile miles",
    "ft": "ft foot feet",
    "in": "inch inches",
    "yd": "yd yard yards",
    "kg": "kg kgs kilogram kilograms kilo kilos",
    "g": "gram grams",
    "mg": "mg milligram milligrams",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "l": "liter liters litre litres",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "gal": "gal gallon gallons",
    "c": "°c celsius centigrade",
    "f": "°f fahrenheit",
    "k": "kelvin",
    "s": "sec secs second seconds",
    "ms": "ms millisecond milliseconds",
    "min": "mins minute minutes",
    "h": "hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "yr yrs year years",
    "%": "% percent percentage",
    "usd": "$ usd dollar dollars",
    "eur": "€ eur euro euros",
    "gbp": "£ gbp sterling",
    "jpy": "¥ jpy yen",
    "b": "byte bytes",
    "kb": "kb kib kilobyte kilobytes",
    "mb": "mb mib megabyte megabytes",
    "gb": "gb gib gigabyte gigabytes",
    "tb": "tb tib terabyte terabytes",
    "mph": "mph",
    "kmh": "kmh kph km/h",
    "hz": "hz hertz",
    "ghz": "ghz gigahertz",
    "w": "watt watts",
    "kw": "kw kilowatt kilowatts",
    "kwh": "kwh",
    "v": "volt volts",
    "token": "token tokens",
    "px": "px pixel pixels",
}
UNITS = {spelling: unit for unit, words in _UNIT_GROUPS.items() for spelling in words.split()}

# File formats, languages and the like: directional pairs ("X to Y") count when both sides are
# one of these, an entity, an identifier or a unit.
FORMAT_WORDS = _w(
    """
    json yaml yml xml csv tsv html markdown pdf docx png jpg jpeg gif svg webp mp3 mp4 wav
    utf-8 ascii base64 hex binary decimal octal string int integer float list dict tuple set
    array dataframe bytes celsius fahrenheit kelvin
    """
)

# Capitalised words that start a sentence without naming anything.
COMMON_STARTERS = _w(
    """
    a an the this that these those it its i i'm i've i'd i'll we you he she they my our your
    his her their me us them what what's whats which who whom whose when where why how how's
    is are was were be been being am do does did done can could will would shall should may
    might must have has had having if then else so but and or nor yet also however therefore
    thus hence please explain describe tell give list show write create make find compare
    summarize summarise translate define name provide generate suggest recommend help let
    let's use using get set add remove convert calculate check run install update build
    consider assume imagine suppose note yes no not ok okay hi hello hey thanks thank sure
    there here in on at by for from to of with without about into over under after before
    during since until while as all any some each every both either neither many much more
    most few several other another such same one two three first second next last new old
    good best better great simple quick short long brief again still just only even now
    today tomorrow yesterday is it's isn't aren't don't doesn't can't won't should've
    """
)

# Function words the ``contrast`` check never compares (WordNet gives some of them opposites:
# in/out, on/off, more/less; the polarity axes above handle the ones that carry meaning).
STOPWORDS = _w(
    """
    a an the this that these those it its i me my we us our you your he him his she her they
    them their is are was were be been being am do does did done have has had having can could
    will would shall should may might must of in on at by for from to with without into onto
    about over under after before during since until while as than then and or but nor so yet
    if else also not no yes all any some each every both either neither many much more most
    few less least what which who whom whose when where why how there here very just only even
    still again too such same other another one own out off use used using get got
    make made let like based given
    """
)
