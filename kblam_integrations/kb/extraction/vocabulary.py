"""The closed word lists and spaCy labels the extraction rules consult."""

_SUBJ = ("nsubj", "nsubjpass")
_PERSONAL = {"he": "person", "she": "person", "him": "person", "it": "thing", "they": "any", "them": "any"}
_POSSESSIVE = {"his": "person", "her": "person", "its": "thing", "their": "any"}
_NON_REFERRING = {
    "i", "me", "my", "mine", "we", "us", "our", "you", "your", "this", "that", "these", "those", "which",
    "who", "whom", "whose", "what", "where", "when", "why", "how", "there", "here", "someone", "something",
    "anyone", "anything", "everyone", "everything", "nobody", "nothing", "one", "some", "many", "few",
    "all", "both", "each", "either", "neither", "none", "itself", "himself", "herself", "themselves",
}
_BAD_ARGUMENTS = _NON_REFERRING | set(_PERSONAL) | set(_POSSESSIVE) | {"hers", "theirs", "ours", "yours"}
_ARTICLES = ("the ", "a ", "an ")
_MODALS = {"may", "might", "could", "would", "should", "must", "can", "shall"}
_CONDITIONAL_MARKS = {"if", "unless", "whether", "lest"}
_LINKING = {"become", "remain"}
_LOCATIVE = {"in", "at", "on", "near", "inside", "within", "beside", "between", "above", "below", "under",
             "outside", "along", "across", "behind", "opposite"}
_DIRECTIONAL = {"to", "in", "at", "into", "from", "across", "throughout", "on", "onto", "towards", "toward"}
_DIMENSIONS = {"tall": "height", "high": "height", "long": "length", "deep": "depth", "wide": "width",
               "broad": "width", "thick": "thickness", "old": "age", "heavy": "weight", "large": "size"}
# nouns that turn a verb into a multi-word predicate: "take place in", "take part in", "take office in"
_LIGHT_VERBS = {"take", "make", "gain", "lose", "hold", "find", "set"}
_LIGHT_NOUNS = {"place", "part", "office", "power", "care", "charge", "control", "shape", "root", "advantage",
                "effect", "home"}
# definite descriptions that may refer back to the last named subject ("the company ...")
_GENERIC_HEADS = {
    "company", "firm", "corporation", "business", "organisation", "organization", "group", "startup",
    "start-up", "bank", "band", "team", "club", "city", "town", "village", "country", "nation", "state",
    "river", "lake", "mountain", "island", "university", "college", "school", "museum", "institute",
    "foundation", "agency", "brand", "manufacturer", "airline", "charity", "party", "building", "tower",
    "bridge", "film", "movie", "book", "novel", "album", "song", "game", "project", "product", "region",
    "province", "capital", "ship", "lab", "laboratory", "hospital", "church", "park", "festival", "event",
    "language", "species", "planet", "star", "volcano", "desert", "sea", "ocean", "platform", "software",
    "library", "framework", "device", "studio", "publisher", "restaurant", "hotel", "airport", "station",
    "mission", "treaty", "prize", "award", "district", "county", "kingdom", "empire", "republic",
}
# gendered relation nouns and titles: "Her husband, Pierre Curie" tells who "he" can be later
_MALE = {"husband", "father", "son", "brother", "uncle", "nephew", "grandfather", "grandson", "king", "prince",
         "mr", "mr.", "sir", "lord", "duke", "emperor", "boyfriend", "stepfather", "stepson"}
_FEMALE = {"wife", "mother", "daughter", "sister", "aunt", "niece", "grandmother", "granddaughter", "queen",
           "princess", "mrs", "mrs.", "ms", "ms.", "miss", "lady", "dame", "duchess", "empress", "girlfriend",
           "stepmother", "stepdaughter"}
_PRONOUN_GENDER = {"he": "m", "him": "m", "his": "m", "she": "f", "her": "f"}
# definite descriptions resolved in object position too ("He joined the firm")
_ORG_HEADS = {"company", "firm", "corporation", "business", "organisation", "organization", "group", "startup",
              "start-up", "bank", "band", "team", "club", "university", "agency", "brand", "manufacturer", "airline",
              "charity", "studio", "publisher", "lab", "laboratory", "institute", "foundation"}
_NUMERIC_ENTS = {"DATE", "TIME", "CARDINAL", "QUANTITY", "MONEY", "PERCENT", "ORDINAL"}
_NAME_ENTS = {"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "WORK_OF_ART", "EVENT", "LAW", "LANGUAGE"}
_KEEP_PUNCT = {"-", "–", "'", "’", "&", "/", ".", "+"}
_MAX_ARG_TOKENS = 24
_MAX_CHUNK_CHARS = 20_000
