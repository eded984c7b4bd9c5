"""Word lists and syllable inventories for the synthetic KB generator.

Content words (names, adjectives, nouns, verbs, people, fields) are partitioned between
the train and validation splits by :mod:`.synthetic` with a fixed, seeded hash, so every
list here is shared raw material: no list is split by hand. Entries are single words
(letters only) so that the partition is exact at the token level.
"""

from __future__ import annotations

FIRST_NAMES = """
Marisol Amara Kenji Ingrid Tomas Priya Olumide Lucia Dmitri Aisha Mateo Freya Hiroshi Nadia
Emeka Saoirse Rafael Yuki Leila Henrik Chiara Kwame Anouk Farid Ines Tariq Sunniva Bao Camila
Oskar Zainab Luca Mei Arjun Elif Jonas Thandiwe Pablo Astrid Kofi Sofia Ravi Yara Emil Ngozi
Diego Hana Malik Greta Tenzin Carmen Idris Maren Jun Fatima Stellan Ayesha Bruno Linnea
Santiago Keiko Omar Vera Rohan Esme Tobias Adaeze Nikolai Paloma Aleksander Soraya Cyrus Ilse
Mateus Noor Evander Beatriz Haruto Amani Lorenzo Siobhan Kaveh Rosalind Jomo Annika Ezra
Valentina Desmond Leilani Ansel Ottilie Bashir Mirela Teodor Catalina Ishaan Oona Wendell
Zofia Gideon Ayla Caspian Marguerite Yusuf Delphine Anders Folake Raul Sigrid Hamza Liesel
Ciaran Nia Ignacio Tamsin Viktor Imogen Kai Renata Barnaby Ximena Florin Odile Rashid Juniper
Alejandro Katya Felix Morwenna Sanjay Ulla Cosmo Wanjiru Piers Anneliese Dario Hyun Orla
Matthias Solveig Ade Paz Leopold Nilufar Quentin Rosa Tadeo Elodie Zeynep Aurelio Brigid Chidi
Dagny Eamon Farah Gaspard Hedda Ivo Jacinta Kasimir Lowri Mehmet Nell Osvaldo Petra Quinn
Rune Sabine Thiago Una Vikram Wilhelmina Xavier Yasmin Zoltan Abebe Bronwen Cassius Dorothea
Eilif Fenella Goran Hortense Isidro Jolene Kalani Lysander Magnus Nerys Obadiah Perpetua
Radomir Seraphina Tiberius Ugo Vesna Wolfgang Yevgenia Zuri Anselm Benedikta Cormac Dervla
Efua Florentyna Gwilym Halima Ioana Jarrah Kerensa Lachlan Mireille Nkechi Oisin Philippa
""".split()

SURNAMES = """
Okonkwo Hart Lindqvist Okafor Nakamura Castellanos Brennan Adeyemi Kowalski Haddad Moreau
Sorensen Varga Reyes Sato Mbeki Petrov Ferreira Nguyen Delacroix Abernathy Oyelaran Tanaka
Galloway Rossi Eriksen Mensah Iyer Kaplan Duarte Halvorsen Achterberg Beaumont Chaudhry
Dimitriou Ekwueme Fairweather Grunewald Hollis Ibarra Jankowski Kaur Lachance Marchetti Novak
Ortega Pemberton Quintero Rasmussen Szabo Thorne Ueda Valente Whitlock Xu Yilmaz Zielinski
Abiodun Bergstrom Cavendish Dunmore Esposito Fitzgerald Gallardo Hakimi Inoue Jovanovic Kimura
Lombardi Mwangi Nystrom Oduya Pacheco Quesada Rahman Salazar Takahashi Umarov Vasquez Wojcik
Yamamoto Zamora Ashworth Blackwood Carrow Dalgleish Ellery Fenwick Gulliver Harrow Ingleby
Jessop Kettering Lockwood Marlowe Netherby Oakhurst Penhaligon Quayle Ravensworth Stirling
Tremaine Underhill Vance Winterbourne Yardley Achebe Banerjee Castillo Dossou Elbaz Fonseca
Gaspar Hoffmann Ishikawa Juarez Karimi Larsen Mahlangu Nair Obi Popescu Qureshi Romero
Sandoval Tiwari Ulloa Voss Weller Yoon Zaragoza Amsel Brandt Chen Dahl Eze Fischer Gomez
Horvath Ilunga Jensen Kovac Lindgren Moretti Nilsen Owusu Park Ramos Silva Toure Urquhart
Vidal Wang Yeboah Zhou Mackenzie Ocampo Strand Kiplagat Lefebvre Sundberg Alvarado Baptiste
Corbin Dlamini Espinoza Falk Grimaldi Hosseini Ivanova Janssen Kruger Laine Mercer Nakagawa
Olsen Pereira Rinaldi Sokolov Tavares Ulrich Virtanen Wainwright Agbaje Bjornsson Cardenas
Dufresne Engstrom Fagerlund Gutierrez Hanssen Iwasaki Jaramillo Kilbride Lundqvist Montoya
Nwachukwu Oyama Pettersson Rautio Sebastiani Teixeira Uchenna Vaillancourt Wetherby Yanez
""".split()

ADJECTIVES = """
affordable modular portable solar coastal rural experimental sustainable ancient arctic amber
bright brisk careful civic clever compact crimson curious daring digital distant durable eager
early electric elegant emerald endless fertile fragile frozen gentle gilded golden graceful
granite hidden hollow honest humble icy indigo iron ivory jade keen lively lofty lucid lunar
mellow mighty misty modern mossy native nimble noble northern oaken orbital pale patient polar
precise quiet radiant rapid rare remote robust rocky rugged rustic sandy scarlet secure serene
shady silent silver simple slender smart snowy solid sonic southern sparkling spiral stable
steady sterling stormy sturdy subtle sunny swift tidal tiny tranquil tropical velvet vibrant
vivid volcanic wandering warm wild windy wise wooden agile analog aquatic autumn azure bold
breezy bronze calm candid cedar cobalt copper coral cosmic crystal dusty eastern fiery floral
fluent frugal glacial hardy hazel heroic jovial kind lean linear loyal lush magnetic mild
mobile muddy neon nomadic opal pastel pearl playful plucky primal proud quaint regal restless
rosy royal ruby sapphire scenic shiny silken sleek smoky sober spry starry sunlit tawny thrifty
timber tireless urgent verdant vintage western wintry woolly brave cheerful clear cozy crisp
dapper dazzling delicate dreamy fearless fresh friendly frosty glossy hearty hopeful lavish
limber luminous majestic merry nautical obsidian orderly peaceful pristine quirky rainy sacred
savvy seasonal shimmering spotless stellar striped sublime tender thoughtful trusty upbeat
valiant whimsical wholesome zealous
""".split()

# Concrete things; plurals are formed by rule in synthetic.py (all regular).
NOUNS = """
filter drone turbine satellite textbook vaccine bicycle greenhouse battery lantern microscope
telescope compass tractor kettle loom canoe sensor robot engine pump valve cable antenna beacon
blanket boot bottle brick brush bucket cabinet camera candle carpet chair clock crate curtain
desk drum fence flute glove hammer helmet jacket jar ladder lamp lens mirror needle notebook
oven paddle pencil piano pillow pipe plank plate pot printer puzzle quilt radio rope saddle
sail scarf scooter shovel sled spoon stool stove tablet tent ticket tile toolkit torch towel
trumpet umbrella vase violin wagon wallet whistle window workbench algorithm archive atlas
badge banner barrel basket blueprint boiler cartridge catalogue chip circuit compressor
conveyor cooler crane dashboard database detector dial drill dynamo furnace gadget gearbox
generator glider grinder harness heater hydrant incubator inverter kiosk laser magnet manual
meter modem motor nozzle orchard panel pendulum periscope piston planter processor projector
propeller prototype pulley radar reactor receiver reservoir rover scanner shelter shuttle
siphon skylight spindle sprinkler stethoscope submarine switch synthesizer thermostat tracker
trailer transmitter treadmill trellis tripod tunnel turntable vessel windmill wheel widget
seed recipe mural sculpture poem song manuscript fossil mosaic tapestry ceramic almanac
hammock kayak lifeboat microphone notepad oar parachute quiver rucksack sundial teapot
thimble toaster trowel wheelbarrow yoke zipper anchor bellows chisel easel funnel gauge
hourglass inkwell kiln ledger mallet oilcan pitchfork rake sextant spyglass stencil tongs
vial wrench
""".split()

VERBS = """
build design develop repair distribute restore map monitor protect teach recycle assemble
calibrate clean collect compose conserve cultivate curate decode deliver digitize document
donate engineer explore export fabricate forecast fund grow harvest import improve install
invent lease lend maintain manufacture measure mentor negotiate organize package paint plant
polish preserve print produce promote publish purify rebuild refine rent research rescue sell
sew ship simulate source store study supply survey sustain test track trade translate
transport upcycle upgrade weave audit brew carve chart coach craft deploy detect diagnose
distill draft edit forge glaze illustrate inspect knit launch mend mill mix navigate patrol
prune quarry refurbish renovate retrofit sculpt sketch smelt solder sort spin stitch tend
tune vaccinate weld whittle insulate irrigate label lacquer ferment forage graft hatch
catalog classify compost cool decorate dredge embroider engrave excavate filter grind heat
hoist illuminate laminate lubricate melt moor photograph pickle plaster pollinate quilt reclaim
repaint reseal rewire rinse roast salvage sand scan season shear shelter smoke splice stack
steam stencil sterilize stockpile survey tag thatch tint transplant trim varnish ventilate
water wax whisk winnow wrap
""".split()

# People nouns: used in the singular as occupations and in the plural as audiences.
PEOPLE = """
farmer nurse student teacher miner artist musician engineer doctor sailor baker weaver
librarian cyclist hiker gardener beekeeper carpenter architect researcher surgeon midwife
shepherd potter poet chef brewer astronomer geologist botanist historian journalist lawyer
mechanic plumber electrician firefighter ranger athlete dancer painter photographer tailor
jeweler courier cook clerk programmer designer inventor biologist cartographer luthier
glassblower blacksmith economist linguist sculptor novelist composer chemist physicist
statistician veterinarian pharmacist zoologist ecologist oceanographer volcanologist archivist
curator translator surveyor navigator locksmith clockmaker cobbler florist farrier stonemason
roofer welder machinist animator illustrator choreographer playwright diplomat entrepreneur
accountant auditor broker banker tutor referee paramedic dentist optician herbalist vintner
fisherman trapper forester ferryman child villager commuter tourist veteran refugee pensioner
""".split()

IRREGULAR_PLURALS = {
    "midwife": "midwives",
    "fisherman": "fishermen",
    "ferryman": "ferrymen",
    "child": "children",
}

# Adjectives that qualify an occupation ("marine biologist").
OCCUPATION_MODIFIERS = """
marine structural forensic freelance senior retired amateur independent celebrated
clinical experimental maritime municipal theatrical botanical industrial acclaimed
veteran itinerant provincial regional travelling visiting resident rural urban pastoral
medical naval civil mechanical agricultural culinary musical ceremonial coastal alpine
digital nocturnal forensic diplomatic seasonal volunteer
""".split()

FIELDS = """
agronomy aquaculture biotechnology cartography ceramics cybersecurity ecology forestry
genomics horticulture hydrology metallurgy navigation nutrition optics packaging photonics
publishing robotics seismology shipbuilding textiles tourism typography viticulture acoustics
aerospace agriculture architecture astronomy avionics carpentry catering chemistry climatology
cosmetics dairy dentistry desalination electronics fintech fisheries footwear furniture
glassmaking healthcare hospitality insurance journalism linguistics machinery medicine
meteorology microbiology nanotechnology oceanography pharmaceuticals pottery radiology railways
renewables semiconductors software telecommunications toys veterinary watchmaking winemaking
zoology beekeeping perfumery papermaking bookbinding geodesy hydroponics mycology
apiculture archaeology biomechanics calligraphy cheesemaking clockwork composites cryogenics
dyeing embroidery entomology ergonomics falconry fermentation gemology glaciology herpetology
ichthyology ironwork lacemaking lithography locksmithing masonry millinery mineralogy
orthodontics ornithology paleontology petrology phonetics pyrotechnics saddlery shipwrighting
taxidermy thermodynamics topography toxicology upholstery volcanology weaving woodturning
""".split()

# Sub-word material: coined words are assembled from these and then partitioned whole.
SYLLABLE_STARTS = """
al bel bra cal cor dar del dun el fen gal hal il jar kal kor lan lor mal mar mer nal nor or
pal pel quil ral ren sal sel tal tor tes ul val vel ves wen yar zal zor ash bri cas dro fal
gor hes ith jun kes lys mor nev oss pry rho syl tam thal ud vin wyn xan yel zen ae bo ca de
fi ga ha ka la ma na ri sa ta va ze ober isk tre gla sto fro bal cin dra esk hol ly pem sor
""".split()

SYLLABLE_MIDS = """
a e i o u an en in on ar er ir or al el il ol ra re ri ro la le li lo na ne ni no ta te ti
to va ve vi sa se si mi ma da di do ba bi ga ki ber ven dal mir
""".split()

SYLLABLE_ENDS = """
a ia ara essa ina ora ano ino line ra mark ton via dor ven ris lis th wick mond ix ium ova
ana elle ette os us is an en on ar or el al ith eth ryn wyn ley ford moor holt gard vik stad
heim burg grad pol abad pur ore ane ene ine one yn ax ex ox ista ando enza arra ulo ique
""".split()

# Stems and endings for English-looking place names ("Brackenford", "Ashhaven").
PLACE_STEMS = """
bracken ash thorn elder ember mill stone raven wolf oak willow hazel bram fern heather kings
marsh red black white green birch hollin alder rook sedge lark wren hart frost glen holly
moss bright cold fair long high deep broad
""".split()

PLACE_ENDINGS = """
ford haven mere wick by stead holm port field burgh dale ton bury worth ley combe wood gate
moor cliff bridge brook hurst shaw well minster
""".split()

# Stems and heads for compound product names ("Quillmark", "Emberpad").
PRODUCT_STEMS = """
quill ember brook flint glint hearth kestrel lumen marble nimbus onyx pebble quartz rivet
spark thistle umber vesper willow zephyr cinder drift fable gale halo iris juno koi lark
mica nova orbit prism quasar ripple sable tango ultra vortex wisp yarrow zest aero bolt
crest dusk echo fjord glow helix ion jolt kite loom mint
""".split()

PRODUCT_HEADS = """
mark pad wave line sense cast pod beam loop nest frame core dock link port grid hub sync
flow view book tab cube dial box stream scope craft mate kit
""".split()
